"""The embedded engine: ONNX Runtime detectors loaded once, one StreamAnonymizer per stream or file."""

from __future__ import annotations

from pathlib import Path

from ..core.detections import ObjectClass
from ..core.policy import CameraContext
from ..inference.detectors import CenterFaceDetector, Detector, PlateTextDetector
from ..inference.onnx_backend import RuntimeOptions, load_model
from ..inference.repository import ModelRepository
from .frame_step import StreamAnonymizer

MODELS: dict[ObjectClass, tuple[str, type[CenterFaceDetector] | type[PlateTextDetector]]] = {
    ObjectClass.FACE: ("face_centerface", CenterFaceDetector),
    ObjectClass.PLATE: ("plate_ppocr_det", PlateTextDetector),
}


class EmbeddedEngine:
    def __init__(
        self,
        repository: Path | None = None,
        options: RuntimeOptions | None = None,
        classes: list[ObjectClass] | None = None,
    ) -> None:
        self.repository = ModelRepository(repository)
        self.detectors: dict[ObjectClass, Detector] = {}
        for object_class in classes or list(MODELS):
            name, factory = MODELS[object_class]
            self.detectors[object_class] = factory(load_model(self.repository, name, options))

    def stream(
        self, context: CameraContext, pixel_budget: float = 0.0, detect_interval: int = 1, name: str = ""
    ) -> StreamAnonymizer:
        missing = [c.name.lower() for c in context.profile.masked_classes if c not in self.detectors]
        if missing:
            raise ValueError(f"profile {context.profile.name} masks {missing} but no detector is loaded")
        return StreamAnonymizer(context, self.detectors, pixel_budget, detect_interval, name)
