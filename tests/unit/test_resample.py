"""The resize for frames already in GPU memory: within a grey level of swscale's, the same on every backend,
and the detectors find the same objects on its input as on the CPU engine's."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
import scenes
from backends import BACKENDS, cupy_param

from orchestrator.core.detections import ObjectClass
from orchestrator.core.resample import resample_weights, resize_to_planes
from orchestrator.core.xp import to_numpy
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.inference.detectors import Detector
from orchestrator.inference.onnx_backend import RuntimeOptions
from orchestrator.inference.preprocess import device_input, network_size, resize_batch
from orchestrator.samples import astronaut


@pytest.mark.parametrize(("n_in", "n_out"), [(720, 448), (100, 250), (3, 1), (1, 4)])
def test_each_output_sample_is_a_weighted_mean(n_in: int, n_out: int) -> None:
    weights = resample_weights(n_in, n_out, np)
    assert weights.shape == (n_out, n_in)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


def test_a_same_size_axis_is_copied() -> None:
    np.testing.assert_array_equal(resample_weights(9, 9, np), np.eye(9, dtype=np.float32))


@pytest.mark.parametrize("image", [astronaut(), scenes.street()], ids=["photo", "street"])
@pytest.mark.parametrize("scale", [0.3, 0.5, 0.6, 1.0, 1.5, 2.0])
def test_the_resize_is_close_to_swscales_borders_included(image: np.ndarray, scale: float) -> None:
    """swscale's filters differ a little from the triangle: measured, a mean difference under 0.3 grey
    levels, 99% of samples within 3, the worst 15 (high-contrast edges of the photo halved)."""
    h, w = image.shape[:2]
    size = network_size(w, h, scale)
    cpu_engine = resize_batch([image], size).transpose(0, 3, 1, 2).astype(np.float32)
    planes = resize_to_planes(image[None], size)
    assert planes.shape == cpu_engine.shape and planes.dtype == np.float32
    difference = np.abs(planes - cpu_engine)
    assert difference.mean() < 0.3
    assert np.percentile(difference, 99) <= 3
    assert difference.max() <= 16
    borders = np.concatenate([difference[..., [0, -1], :].ravel(), difference[..., :, [0, -1]].ravel()])
    assert np.percentile(borders, 99) <= 3  # taps beyond the frame read the edge sample, as in swscale


@pytest.mark.parametrize("xp", [cupy_param()])
def test_the_gpu_resize_equals_the_numpy_one_within_a_grey_level(xp: ModuleType) -> None:
    batch = np.stack(scenes.sample_frames())
    for scale in (0.5, 1.0, 1.7):
        size = network_size(batch.shape[2], batch.shape[1], scale)
        on_gpu = to_numpy(resize_to_planes(xp.asarray(batch), size))
        assert np.abs(on_gpu - resize_to_planes(batch, size)).max() <= 1.0  # sums in another order


@pytest.fixture(scope="module")
def detectors() -> dict[ObjectClass, Detector]:
    return EmbeddedEngine(options=RuntimeOptions(device="cpu", precision="fp32")).detectors


@BACKENDS
@pytest.mark.parametrize(
    ("object_class", "scale", "threshold"),
    [(ObjectClass.FACE, 1.0, 0.5), (ObjectClass.FACE, 0.5, 0.3), (ObjectClass.PLATE, 1.0, 0.5)],
)
def test_the_detectors_find_the_same_objects_on_either_resize(
    detectors: dict[ObjectClass, Detector],
    xp: ModuleType,
    object_class: ObjectClass,
    scale: float,
    threshold: float,
) -> None:
    frames = scenes.sample_frames()
    detector = detectors[object_class]
    expected = detector.detect(frames, scale, threshold)
    blob, input_scale = device_input(xp.asarray(np.stack(frames)), scale, detector.normalise)  # type: ignore[attr-defined]
    found = detector.decode(detector.model.run(to_numpy(blob)), threshold, input_scale)  # type: ignore[attr-defined]
    assert len(expected) > 0, "the frames must hold something to find"
    assert len(found) == len(expected)
    order_found = np.lexsort((found.boxes[:, 0], found.frame_index))
    order_expected = np.lexsort((expected.boxes[:, 0], expected.frame_index))
    np.testing.assert_array_equal(found.frame_index[order_found], expected.frame_index[order_expected])
    np.testing.assert_allclose(found.boxes[order_found], expected.boxes[order_expected], atol=1.0)
    np.testing.assert_allclose(found.scores[order_found], expected.scores[order_expected], atol=0.02)
