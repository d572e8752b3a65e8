"""The embedded engine: detectors loaded once (ONNX Runtime in process, or a Triton server), one
StreamAnonymizer per stream or file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.detections import ObjectClass
from ..core.policy import CameraContext
from ..inference.detectors import MODELS, Detector
from ..inference.onnx_backend import RuntimeOptions, load_model
from ..inference.repository import ModelRepository
from .frame_step import StreamAnonymizer

if TYPE_CHECKING:
    from ..inference.triton_backend import TritonClient
    from ..inference.triton_options import TritonOptions


class EmbeddedEngine:
    def __init__(
        self,
        repository: Path | None = None,
        options: RuntimeOptions | None = None,
        classes: list[ObjectClass] | None = None,
        triton: TritonOptions | None = None,
    ) -> None:
        self.repository = ModelRepository(repository)
        self.options = options
        self.triton: TritonClient | None = None
        if triton is not None:
            from ..inference.triton_backend import TritonClient  # the `triton` extra

            self.triton = TritonClient(triton)
        self.detectors = self._load(classes or list(MODELS))

    def _load(self, classes: list[ObjectClass]) -> dict[ObjectClass, Detector]:
        detectors: dict[ObjectClass, Detector] = {}
        for object_class in classes:
            name, factory = MODELS[object_class]
            if self.triton is not None:
                from ..inference.triton_backend import TritonDetector

                spec = self.repository.model(name)
                detectors[object_class] = TritonDetector(self.triton, object_class, spec, factory.box_slack)
            else:
                detectors[object_class] = factory(load_model(self.repository, name, self.options))
        return detectors

    def reload(self) -> None:
        """Load the serving versions again (after an activation); streams made from now on use them.
        Through Triton the server swapped the model; the detectors re-read their traits from the configs."""
        self.detectors = self._load(list(self.detectors))

    def stream(
        self, context: CameraContext, pixel_budget: float = 0.0, detect_interval: int = 1, name: str = ""
    ) -> StreamAnonymizer:
        missing = [c.name.lower() for c in context.profile.masked_classes if c not in self.detectors]
        if missing:
            raise ValueError(f"profile {context.profile.name} masks {missing} but no detector is loaded")
        return StreamAnonymizer(context, self.detectors, pixel_budget, detect_interval, name)

    def close(self) -> None:
        if self.triton is not None:
            self.triton.close()
