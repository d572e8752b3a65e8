"""Detectors: pre-processing, one batched inference, and the pure decoder, per model family."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from PIL import Image

from ..core.decoders import DBParams, decode_centerface, decode_db
from ..core.detections import Detections, ObjectClass
from ..core.policy import DetectorTraits
from .onnx_backend import LoadedModel
from .repository import RepositoryError

NETWORK_STRIDE = 32  # both detectors downsample by 32: input sides must be multiples of it
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


def network_size(width: int, height: int, scale: float) -> tuple[int, int]:
    def side(n: int) -> int:
        return max(NETWORK_STRIDE, round(n * scale / NETWORK_STRIDE) * NETWORK_STRIDE)

    return side(width), side(height)


def resize_batch(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """[B,H,W,3] uint8 at the network size (bilinear, C speed through Pillow)."""
    h, w = frames[0].shape[:2]
    if (w, h) == size:
        return np.stack(frames)
    # reducing_gap: shrink by an integer factor with a cheap box filter first, then resample the rest.
    return np.stack(
        [
            np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0))
            for f in frames
        ]
    )


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

    def _prepare(self, frames: list[np.ndarray], scale: float) -> tuple[np.ndarray, tuple[float, float]]:
        h, w = frames[0].shape[:2]
        size = network_size(w, h, scale)
        batch = resize_batch(frames, size)
        return batch, (size[0] / w, size[1] / h)


class CenterFaceDetector(_OnnxDetector):
    object_class = ObjectClass.FACE
    box_slack = 8.0  # centre and size each uncertain by one 4-pixel heatmap cell

    def detect(self, frames: list[np.ndarray], scale: float, threshold: float) -> Detections:
        batch, input_scale = self._prepare(frames, scale)
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)  # RGB 0..255
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
        batch, input_scale = self._prepare(frames, scale)
        bgr = batch[..., ::-1].transpose(0, 3, 1, 2)
        blob = np.ascontiguousarray(bgr, dtype=np.float32) * (2 / 255) - 1  # (x/255 - 0.5) / 0.5
        out = self.model.run(blob)
        params = DBParams(
            box_threshold=threshold, min_aspect=self.MIN_ASPECT, max_height_share=self.MAX_HEIGHT_SHARE
        )
        return decode_db(out["probability"], input_scale, params, ObjectClass.PLATE)
