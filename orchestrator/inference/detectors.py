"""Detectors: pre-processing, one batched inference, and the pure decoder, per model family."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from ..core.decoders import DBParams, decode_centerface, decode_db
from ..core.detections import Detections, ObjectClass
from ..core.policy import DetectorTraits
from .onnx_backend import LoadedModel
from .preprocess import centerface_input, db_input
from .repository import RepositoryError

# config.pbtxt parameter: the smallest object (network-input pixels) the detector finds reliably, measured
RELIABLE_MIN_PX = "cityveil_reliable_min_px"
RELIABLE_MAX_PX = "cityveil_reliable_max_px"  # optional: the largest object it still boxes whole


class Detector(Protocol):
    @property
    def object_class(self) -> ObjectClass: ...

    @property
    def traits(self) -> DetectorTraits: ...

    @property
    def label(self) -> str: ...

    def detect(self, frames: list[np.ndarray], scale: float, threshold: float) -> Detections: ...


class _OnnxDetector:
    object_class: ObjectClass

    box_slack: float

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        min_px = model.spec.parameter(RELIABLE_MIN_PX)
        if min_px is None:
            raise RepositoryError(f"{model.spec.folder}/config.pbtxt lacks parameter {RELIABLE_MIN_PX}")
        max_px = model.spec.parameter(RELIABLE_MAX_PX)
        self.traits = DetectorTraits(
            reliable_min_px=float(min_px),
            box_slack=self.box_slack,
            reliable_max_px=float(max_px) if max_px is not None else math.inf,
        )

    @property
    def label(self) -> str:
        return self.model.label


class CenterFaceDetector(_OnnxDetector):
    object_class = ObjectClass.FACE
    box_slack = 8.0  # centre and size each uncertain by one 4-pixel heatmap cell

    def detect(self, frames: list[np.ndarray], scale: float, threshold: float) -> Detections:
        blob, input_scale = centerface_input(frames, scale)
        out = self.model.run(blob)
        return decode_centerface(out["heatmap"], out["scale"], out["offset"], threshold, input_scale)


class PlateTextDetector(_OnnxDetector):
    """PP-OCR's DB text detector; the wide text regions it finds are masked as plates.

    Plates, square motorcycle plates included, are wider than tall and far smaller than the frame; other
    regions are dropped, because DB also fires on car roofs and painted road markings, and masking a
    vehicle or the road destroys the analytics.
    """

    object_class = ObjectClass.PLATE
    box_slack = 2.0  # DB maps are full resolution; the unclip distance is an estimate
    MIN_ASPECT = 1.2
    MAX_HEIGHT_SHARE = 0.25

    def detect(self, frames: list[np.ndarray], scale: float, threshold: float) -> Detections:
        blob, input_scale = db_input(frames, scale)
        out = self.model.run(blob)
        params = DBParams(
            box_threshold=threshold, min_aspect=self.MIN_ASPECT, max_height_share=self.MAX_HEIGHT_SHARE
        )
        return decode_db(out["probability"], input_scale, params, ObjectClass.PLATE)
