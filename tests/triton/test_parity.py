"""The ensemble's detections equal the embedded backend's on the same frames."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.policy import LOWEST_THRESHOLD
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.inference.onnx_backend import RuntimeOptions
from orchestrator.inference.triton_options import TritonOptions
from orchestrator.inference.triton_server import ENSEMBLE, TritonServer


def same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    order_a = np.lexsort((a.boxes[:, 0], a.frame_index))
    order_b = np.lexsort((b.boxes[:, 0], b.frame_index))
    np.testing.assert_array_equal(a.frame_index[order_a], b.frame_index[order_b])
    np.testing.assert_array_equal(a.classes[order_a], b.classes[order_b])
    np.testing.assert_allclose(a.boxes[order_a], b.boxes[order_b], atol=0.05)
    np.testing.assert_allclose(a.scores[order_a], b.scores[order_b], atol=1e-4)


@pytest.fixture(scope="module")
def engines(triton_server: TritonServer) -> Iterator[tuple[EmbeddedEngine, EmbeddedEngine]]:
    triton = EmbeddedEngine(triton=TritonOptions(url=triton_server.url))
    yield EmbeddedEngine(options=RuntimeOptions(device="cpu")), triton
    triton.close()


@pytest.mark.parametrize(
    ("object_class", "scale", "threshold"),
    [
        (ObjectClass.FACE, 1.0, 0.5),
        (ObjectClass.FACE, 0.5, 0.3),
        (ObjectClass.FACE, 1.5, 0.6),
        (ObjectClass.PLATE, 1.0, 0.5),
        (ObjectClass.PLATE, 2.0, 0.4),
    ],
)
def test_ensemble_finds_what_the_embedded_backend_finds(
    engines: tuple[EmbeddedEngine, EmbeddedEngine],
    sample_frames: list[np.ndarray],
    object_class: ObjectClass,
    scale: float,
    threshold: float,
) -> None:
    embedded, triton = engines
    batch = [frame.copy() for frame in sample_frames]
    expected = embedded.detectors[object_class].detect(batch, scale, threshold)
    found = triton.detectors[object_class].detect(batch, scale, threshold)
    assert len(expected) > 0, "the frames must hold something to find"
    same(found, expected)
    assert set(found.classes.tolist()) == {int(object_class)}


def test_served_versions_label_the_detectors(engines: tuple[EmbeddedEngine, EmbeddedEngine]) -> None:
    _, triton = engines
    assert triton.detectors[ObjectClass.FACE].label == "face_centerface:1:triton"


def test_a_request_with_only_images_gets_every_object_a_plan_could_accept(
    triton_server: TritonServer,
    engines: tuple[EmbeddedEngine, EmbeddedEngine],
    sample_frames: list[np.ndarray],
) -> None:
    """nvinferserver sends IMAGES alone: the ensemble then reports down to the lowest threshold any camera's
    plan can set, at scale 1, and the DeepStream probe thresholds per camera."""
    embedded, _ = engines
    batch = np.stack(sample_frames)
    client = grpcclient.InferenceServerClient(triton_server.url)
    try:
        images = grpcclient.InferInput("IMAGES", list(batch.shape), "UINT8")
        images.set_data_from_numpy(batch)
        rows = client.infer(ENSEMBLE, [images]).as_numpy("DETECTIONS")
    finally:
        client.close()
    found = Detections.from_rows(rows)
    expected = Detections.concat(
        [
            embedded.detectors[c].detect(list(batch), 1.0, LOWEST_THRESHOLD)
            for c in (ObjectClass.FACE, ObjectClass.PLATE)
        ]
    )
    assert (expected.scores < 0.5).any(), "the frames must hold objects scored under 0.5"
    for object_class in (ObjectClass.FACE, ObjectClass.PLATE):
        same(found.select(found.classes == object_class), expected.select(expected.classes == object_class))
