"""The ensemble's preprocess step, run outside Triton through a fake `triton_python_backend_utils`: host
frames take the embedded engine's resize, frames in GPU memory stay there (resized with CuPy)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scenes
from backends import needs_gpu

import orchestrator.inference
from orchestrator.core.detections import ObjectClass
from orchestrator.core.policy import LOWEST_THRESHOLD
from orchestrator.core.xp import array_module, to_numpy
from orchestrator.inference.detectors import MODELS
from orchestrator.inference.preprocess import NETWORK_STRIDE, device_input


class FakeTensor:
    """The subset of pb_utils.Tensor the python models use. Like the real one, the constructor takes NumPy
    only; GPU arrays come in through `from_dlpack`, which wants them C-contiguous."""

    def __init__(self, name: str, array: Any, via_dlpack: bool = False) -> None:
        assert via_dlpack or isinstance(array, np.ndarray), "pb_utils.Tensor() takes NumPy arrays only"
        self._name, self.array, self.via_dlpack = name, array, via_dlpack

    @classmethod
    def from_dlpack(cls, name: str, array: Any) -> FakeTensor:
        assert hasattr(array, "__dlpack__") and array.flags.c_contiguous
        return cls(name, array, via_dlpack=True)

    def name(self) -> str:
        return self._name

    def is_cpu(self) -> bool:
        return isinstance(self.array, np.ndarray)

    def as_numpy(self) -> np.ndarray:
        assert self.is_cpu(), "Triton refuses as_numpy() on a GPU tensor"
        return self.array

    def to_dlpack(self) -> Any:
        return self.array.toDlpack()


def _fake_pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = FakeTensor  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    module.InferenceResponse = lambda output_tensors: {t.name(): t for t in output_tensors}  # type: ignore[attr-defined]
    return module


@pytest.fixture
def preprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    monkeypatch.delitem(sys.modules, "orchestrator.inference.triton_python", raising=False)
    yield importlib.import_module("orchestrator.inference.triton_python").Preprocess()
    # Never left bound to the fake: neither in sys.modules nor as an attribute of its package.
    sys.modules.pop("orchestrator.inference.triton_python", None)
    if hasattr(orchestrator.inference, "triton_python"):
        delattr(orchestrator.inference, "triton_python")


def _request(images: Any, face_scale: float, plate_scale: float) -> dict[str, FakeTensor]:
    scalar = lambda value: np.full((len(images), 1), value, np.float32)  # noqa: E731
    return {
        "IMAGES": FakeTensor("IMAGES", images),
        "FACE_SCALE": FakeTensor("FACE_SCALE", scalar(face_scale)),
        "FACE_THRESHOLD": FakeTensor("FACE_THRESHOLD", scalar(0.4)),
        "PLATE_SCALE": FakeTensor("PLATE_SCALE", scalar(plate_scale)),
    }


def test_host_frames_take_the_embedded_engines_input(preprocess: Any) -> None:
    frames = scenes.sample_frames()
    outputs = preprocess.execute([_request(np.stack(frames), 0.5, 0.0)])[0]
    expected, (sx, sy) = MODELS[ObjectClass.FACE][1].prepare(frames, 0.5)
    np.testing.assert_array_equal(outputs["FACE_IMAGE"].as_numpy(), expected)
    skipped = outputs["PLATE_IMAGE"].as_numpy()  # not asked for: the smallest input, ignored downstream
    assert skipped.shape == (len(frames), 3, NETWORK_STRIDE, NETWORK_STRIDE)
    # No PLATE_THRESHOLD: the lowest any plan can set (nvinferserver sends none; the probe thresholds).
    np.testing.assert_allclose(outputs["PARAMS"].as_numpy()[0], [sx, sy, 0.4, 0, 0, LOWEST_THRESHOLD])


@needs_gpu
def test_gpu_frames_are_resized_on_the_gpu_and_stay_there(preprocess: Any) -> None:
    import cupy

    batch = cupy.asarray(np.stack(scenes.sample_frames()))
    outputs = preprocess.execute([_request(batch, 0.5, 1.0)])[0]
    for object_class, (_, detector) in MODELS.items():
        tensor = outputs[f"{object_class.name}_IMAGE"]
        blob = tensor.array
        assert tensor.via_dlpack and array_module(blob) is cupy
        scale = 0.5 if object_class.name == "FACE" else 1.0
        expected, _ = device_input(batch, scale, detector.normalise)
        np.testing.assert_array_equal(to_numpy(blob), to_numpy(expected))
    assert outputs["PARAMS"].is_cpu()
