"""Detectors: pre-processing, one batched inference, and the pure decoder, per model family."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import numpy as np

from ..core.decoders import DBParams, decode_centerface, decode_db
from ..core.detections import Detections, ObjectClass
from ..core.policy import DetectorTraits
from ..core.yuv import Frame
from .onnx_backend import LoadedModel
from .preprocess import NetworkInput, Normaliser, centerface_planes, db_planes, host_input
from .repository import ModelSpec, RepositoryError

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

    def detect(self, frames: list[Frame], scale: float, threshold: float) -> Detections: ...


@runtime_checkable
class AsyncDetector(Detector, Protocol):
    """A detector whose requests can be in flight together (Triton, or ONNX Runtime on its own thread):
    `submit` sends one and returns the wait for its answer, which raises what `detect` would."""

    def submit(self, frames: list[Frame], scale: float, threshold: float) -> Callable[[], Detections]: ...


def detector_traits(spec: ModelSpec, box_slack: float) -> DetectorTraits:
    """What the adaptive policy needs to know of a detector, from its config.pbtxt parameters."""
    min_px = spec.parameter(RELIABLE_MIN_PX)
    if min_px is None:
        raise RepositoryError(f"{spec.folder}/config.pbtxt lacks parameter {RELIABLE_MIN_PX}")
    max_px = spec.parameter(RELIABLE_MAX_PX)
    return DetectorTraits(
        reliable_min_px=float(min_px),
        box_slack=box_slack,
        reliable_max_px=float(max_px) if max_px is not None else math.inf,
    )


class _OnnxDetector:
    """A model family's pre-processing and decoding around one ONNX Runtime session. The Triton python
    backend models call the same `prepare` and `decode`, so both backends find the same objects.

    Each detector runs its calls on a thread of its own, one at a time: ONNX Runtime and the resize leave
    the GIL, so the face and plate detectors of a frame step overlap. On 2 cores this took batch video from
    30 to 35 frames/s (docs/performance.md), as one session alone does not keep both cores busy.
    """

    object_class: ObjectClass
    box_slack: float
    normalise: Normaliser  # resized RGB planes -> the network's input (shared by `prepare` and GPU batches)

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.traits = detector_traits(model.spec, self.box_slack)
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{model.name}")
        weakref.finalize(self, self._runner.shutdown, wait=False)  # streams may outlive a reload

    @property
    def label(self) -> str:
        return self.model.label

    @classmethod
    def prepare(cls, frames: list[Frame], scale: float) -> NetworkInput:
        return host_input(frames, scale, cls.normalise)

    @classmethod
    def decode(
        cls, outputs: dict[str, np.ndarray], threshold: float, input_scale: tuple[float, float]
    ) -> Detections:
        raise NotImplementedError

    def detect(self, frames: list[Frame], scale: float, threshold: float) -> Detections:
        blob, input_scale = self.prepare(frames, scale)
        return self.decode(self.model.run(blob), threshold, input_scale)

    def submit(self, frames: list[Frame], scale: float, threshold: float) -> Callable[[], Detections]:
        return self._runner.submit(self.detect, frames, scale, threshold).result


class CenterFaceDetector(_OnnxDetector):
    object_class = ObjectClass.FACE
    box_slack = 8.0  # centre and size each uncertain by one 4-pixel heatmap cell
    normalise = staticmethod(centerface_planes)

    @classmethod
    def decode(
        cls, outputs: dict[str, np.ndarray], threshold: float, input_scale: tuple[float, float]
    ) -> Detections:
        return decode_centerface(
            outputs["heatmap"], outputs["scale"], outputs["offset"], threshold, input_scale
        )


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
    normalise = staticmethod(db_planes)

    @classmethod
    def decode(
        cls, outputs: dict[str, np.ndarray], threshold: float, input_scale: tuple[float, float]
    ) -> Detections:
        params = DBParams(
            box_threshold=threshold, min_aspect=cls.MIN_ASPECT, max_height_share=cls.MAX_HEIGHT_SHARE
        )
        return decode_db(outputs["probability"], input_scale, params, ObjectClass.PLATE)


# The model that finds each class, by folder name in the repository (also the ensemble's steps).
MODELS: dict[ObjectClass, tuple[str, type[CenterFaceDetector] | type[PlateTextDetector]]] = {
    ObjectClass.FACE: ("face_centerface", CenterFaceDetector),
    ObjectClass.PLATE: ("plate_ppocr_det", PlateTextDetector),
}
