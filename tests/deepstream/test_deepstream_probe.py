"""The probes on fake pyds metadata and NumPy surfaces (padded rows, as DeepStream's), with the GPU kernels
compiled for the host: metadata walking, detections into object meta, masking, and failing closed."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import fake_deepstream as fake
import numpy as np
import pytest
from backends import needs_gpu
from host_kernels import HostKernels

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import resolve_profile
from orchestrator.dataplane.deepstream.meta import (
    UNTRACKED_OBJECT_ID,
    frame_detections,
    frames,
    merge_detected,
    objects,
    tensor_output,
)
from orchestrator.dataplane.deepstream.pipeline import ensemble_detectors
from orchestrator.dataplane.deepstream.probe import (
    AnalysisFailed,
    BatchPainter,
    DetectionProbe,
    FrameHandoff,
    MaskingProbe,
    capsule_address,
    map_rgba_surface,
)
from orchestrator.dataplane.frame_step import StreamAnonymizer
from orchestrator.inference.repository import ModelRepository

ROOT = Path(__file__).resolve().parents[2]
H, W, PAD = 72, 128, 64
FACE = int(ObjectClass.FACE)


class Streams:
    """Source slot -> the camera's frame step (the pipeline's role)."""

    def __init__(self, painter: BatchPainter, profiles: dict[int, str]) -> None:
        detectors = ensemble_detectors(ModelRepository(ROOT / "triton_models"), "cityveil_detect")
        self.streams = {
            slot: StreamAnonymizer(
                CameraContext(resolve_profile(name), W, H), detectors, name=f"cam{slot}", painter=painter
            )
            for slot, name in profiles.items()
        }

    def stream_for(self, source_id: int) -> StreamAnonymizer | None:
        return self.streams.get(source_id)


def surfaces(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random RGBA frames with padded rows: (the row buffers, the HxWx4 surface views)."""
    rng = np.random.default_rng(seed)
    buffers = [rng.integers(0, 256, size=(H, W * 4 + PAD), dtype=np.uint8) for _ in range(count)]
    return buffers, [b[:, : W * 4].reshape(H, W, 4) for b in buffers]


def face(
    x1: float, y1: float, x2: float, y2: float, score: float = 0.9, object_id: int = 7
) -> fake.ObjectMeta:
    obj = fake.ObjectMeta(class_id=FACE, confidence=score, object_id=object_id)
    obj.rect_params.left, obj.rect_params.top = x1, y1
    obj.rect_params.width, obj.rect_params.height = x2 - x1, y2 - y1
    return obj


def masking_probe(
    pyds: fake.Pyds, kernels: Any, profiles: dict[int, str], views: list[np.ndarray], **kwargs: Any
) -> tuple[MaskingProbe, FrameHandoff]:
    painter, handoff = BatchPainter(), FrameHandoff()
    probe = MaskingProbe(
        fake.Gst,
        pyds,
        Streams(painter, profiles),
        handoff,
        painter,
        map_surface=kwargs.get("map_surface", lambda _pyds, _buffer, batch_id: views[batch_id]),
        mask=kwargs.get("mask", kernels),
    )
    return probe, handoff


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before[:, :, :3] != after[:, :, :3]).any(axis=2)


# --- metadata --------------------------------------------------------------------------------------------


def test_generators_walk_every_frame_and_object_in_order() -> None:
    pyds = fake.Pyds()
    batch = fake.BatchMeta(
        [fake.FrameMeta(3, 0, 10, [face(0, 0, 5, 5), face(9, 9, 20, 20)]), fake.FrameMeta(1, 1, 4)]
    )
    walked = list(frames(pyds, batch))
    assert [f.pad_index for f in walked] == [3, 1]
    assert [o.rect_params.left for o in objects(pyds, walked[0])] == [0, 9]
    assert list(objects(pyds, walked[1])) == []


def test_frame_detections_carry_tracker_ids_and_keep_tracked_only_objects() -> None:
    pyds = fake.Pyds()
    frame = fake.FrameMeta(
        0, 0, 0, [face(10, 20, 30, 50, 0.8, 5), face(1, 1, 9, 9, -0.1, UNTRACKED_OBJECT_ID)]
    )
    found = frame_detections(pyds, frame)
    assert found.boxes.tolist() == [[10, 20, 30, 50], [1, 1, 9, 9]]
    assert found.track_ids.tolist() == [5, -1]
    assert found.scores.tolist() == pytest.approx([0.8, 1.0])  # carried by the tracker: accepted when found


def test_tensor_output_finds_the_detections_layer() -> None:
    rows = np.arange(14, dtype=np.float32).reshape(2, 7)
    frame = fake.FrameMeta(
        0, 0, 0, user_meta=[fake.detections_meta(rows, "OTHER"), fake.detections_meta(rows)]
    )
    np.testing.assert_array_equal(tensor_output(fake.Pyds(), frame, "DETECTIONS"), rows.ravel())
    assert tensor_output(fake.Pyds(), fake.FrameMeta(0, 0, 0), "DETECTIONS") is None


def test_an_empty_output_layer_is_read_without_touching_its_buffer() -> None:
    meta = fake.detections_meta(np.zeros((0, 7), np.float32))
    meta.user_meta_data.layers[0].buffer = None  # nvinferserver may hand over no buffer for 0 bytes
    found = tensor_output(fake.Pyds(), fake.FrameMeta(0, 0, 0, user_meta=[meta]), "DETECTIONS")
    assert found is not None and found.size == 0


def detections(*boxes: tuple[float, float, float, float], object_class: int = FACE) -> Detections:
    return Detections.build(np.array(boxes, np.float32), np.full(len(boxes), 0.9), ObjectClass(object_class))


def test_a_detection_the_tracker_reports_widens_its_box_and_one_it_lost_is_added() -> None:
    tracked = Detections.concat(
        [detections((10, 10, 30, 30)), detections((50, 50, 70, 70), object_class=int(ObjectClass.PLATE))]
    )
    tracked = Detections(
        tracked.boxes, tracked.scores, tracked.classes, tracked.frame_index, np.array([4, 5])
    )
    # The face moved right (the tracker's box lags); a second face the tracker dropped; a plate-sized face
    # on the plate is another object, not the plate.
    detected = detections((14, 10, 34, 30), (80, 10, 90, 20), (50, 50, 70, 70))
    merged = merge_detected(tracked, detected)
    assert merged.boxes.tolist() == [
        [10, 10, 34, 30],  # the union of the tracker's and the detector's box, with the track's id
        [50, 50, 70, 70],
        [80, 10, 90, 20],
        [50, 50, 70, 70],
    ]
    assert merged.track_ids.tolist() == [4, 5, -1, -1]
    assert merged.classes.tolist() == [FACE, int(ObjectClass.PLATE), FACE, FACE]
    assert merge_detected(tracked, Detections()) is tracked
    assert merge_detected(Detections(), detected).boxes.tolist() == detected.boxes.tolist()


def test_the_handoff_forgets_frames_that_never_reached_the_masking_probe() -> None:
    handoff = FrameHandoff()
    handoff.accepted(0, 1, detections((1, 1, 5, 5)))
    handoff.failed(0, 2)
    handoff.accepted(0, 5, detections((1, 1, 5, 5)))  # a frame ahead of the one taken next
    handoff.accepted(1, 2, detections((1, 1, 5, 5)))
    assert len(handoff.take(0, 3)) == 0  # frames 1 and 2 of source 0 went elsewhere: dropped, not kept
    assert len(handoff.take(0, 1)) == 0 and len(handoff.take(0, 2)) == 0  # gone, the failure too
    assert len(handoff.take(0, 5)) == 1  # later frames are kept
    handoff.failed(0, 6)
    with pytest.raises(AnalysisFailed):
        handoff.take(0, 6)
    handoff.forget(1)  # a new camera in slot 1: what its last camera left is not its own
    assert len(handoff.take(1, 2)) == 0


# PyCapsule_New with its real signature (pyds hands surface pointers over as capsules).
_new_capsule = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi)
)


def test_capsule_address_reads_the_pointer_pyds_hands_over() -> None:
    memory = ctypes.create_string_buffer(16)
    assert capsule_address(_new_capsule(ctypes.addressof(memory), None, None)) == ctypes.addressof(memory)


@needs_gpu
def test_a_surface_is_mapped_without_copying_and_keeps_its_pitch() -> None:
    import cupy

    rows = cupy.zeros((H, W * 4 + PAD), dtype=cupy.uint8)  # a padded NVMM surface
    shape, strides = (H, W, 4), (W * 4 + PAD, 4, 1)
    pyds = fake.Pyds()
    pyds.get_nvds_buf_surface_gpu = lambda _hash, _batch_id: (  # type: ignore[attr-defined]
        np.uint8,
        shape,
        strides,
        _new_capsule(rows.data.ptr, None, None),
        rows.nbytes,
    )

    mapped = map_rgba_surface(pyds, object(), 0)
    mapped[5, 7] = cupy.asarray([1, 2, 3, 4], dtype=cupy.uint8)  # CuPy assigns arrays, not tuples

    assert mapped.shape == shape and mapped.strides == strides and mapped.data.ptr == rows.data.ptr
    assert rows[5, 28:32].tolist() == [1, 2, 3, 4]  # written into the surface itself


# --- the detection probe ---------------------------------------------------------------------------------


def test_plans_in_the_deepstream_engine_state_the_scale_the_ensemble_runs_at() -> None:
    streams = Streams(BatchPainter(), {0: "residential", 1: "traffic"})
    for slot in (0, 1):
        stream = streams.stream_for(slot)
        assert stream is not None
        assert {p.inference_scale for p in stream.plan.classes.values()} == {1.0}
        assert all(p.coarse_scale is None for p in stream.plan.classes.values())


def test_detection_probe_attaches_what_the_policy_accepts() -> None:
    pyds = fake.Pyds()
    rows = np.array(
        [
            [0, 10, 10, 40, 40, 0.9, FACE],  # kept
            [0, 50, 10, 60, 20, 0.05, FACE],  # below public_space's face threshold
            [-1, 0, 0, 0, 0, 0, 0],  # padding
        ],
        dtype=np.float32,
    )
    frame = fake.FrameMeta(0, 0, 0, user_meta=[fake.detections_meta(rows)])
    handoff = FrameHandoff()
    probe = DetectionProbe(fake.Gst, pyds, Streams(BatchPainter(), {0: "public_space"}), handoff, True)

    assert probe(None, fake.probe_info(fake.Buffer(pyds, fake.BatchMeta([frame])))) == "ok"

    (obj,) = frame.objects
    assert (obj.class_id, obj.confidence, obj.object_id) == (FACE, pytest.approx(0.9), UNTRACKED_OBJECT_ID)
    assert (obj.rect_params.left, obj.rect_params.width) == (10, 30)
    # What nvinferserver sets for the detections it parses itself, without which nvtracker drops them:
    assert frame.bInferDone
    detector_box = obj.detector_bbox_info.org_bbox_coords
    assert (detector_box.left, detector_box.top, detector_box.width, detector_box.height) == (10, 10, 30, 30)
    handed = handoff.take(0, 0)  # and the masking probe gets the accepted detections whatever nvtracker does
    assert len(handed) == 1 and handed.boxes[0].tolist() == [10, 10, 40, 40]


def test_a_frame_without_detections_is_marked_failed_when_every_frame_is_analysed() -> None:
    pyds, handoff = fake.Pyds(), FrameHandoff()
    probe = DetectionProbe(fake.Gst, pyds, Streams(BatchPainter(), {2: "public_space"}), handoff, True)
    probe(None, fake.probe_info(fake.Buffer(pyds, fake.BatchMeta([fake.FrameMeta(2, 0, 41)]))))
    with pytest.raises(AnalysisFailed):
        handoff.take(2, 41)
    assert len(handoff.take(2, 41)) == 0  # taken once


def test_a_frame_of_a_source_without_a_camera_yet_is_marked_failed() -> None:
    """A camera being added: its first frames reach the probes before it is in the registry."""
    pyds, handoff = fake.Pyds(), FrameHandoff()
    rows = np.array([[0, 10, 10, 40, 40, 0.9, FACE]], dtype=np.float32)
    frame = fake.FrameMeta(3, 0, 0, user_meta=[fake.detections_meta(rows)])
    probe = DetectionProbe(fake.Gst, pyds, Streams(BatchPainter(), {0: "public_space"}), handoff, True)
    probe(None, fake.probe_info(fake.Buffer(pyds, fake.BatchMeta([frame]))))
    with pytest.raises(AnalysisFailed):
        handoff.take(3, 0)


# --- the masking probe -----------------------------------------------------------------------------------


def test_a_batch_is_masked_in_place_per_camera_and_nothing_else_changes(host_kernels: HostKernels) -> None:
    pyds = fake.Pyds()
    buffers, views = surfaces(2)
    before = [b.copy() for b in buffers]
    batch = fake.BatchMeta(
        [fake.FrameMeta(0, 0, 0, [face(20, 10, 60, 50)]), fake.FrameMeta(1, 1, 0, [face(70, 20, 110, 60)])]
    )
    probe, _ = masking_probe(pyds, host_kernels, {0: "public_space", 1: "restricted"}, views)
    calls = host_kernels.calls

    assert probe(None, fake.probe_info(fake.Buffer(pyds, batch))) == "ok"

    assert host_kernels.calls - calls == 2  # one kernel pass per style (blur, solid), not per box or frame
    far_away = [np.s_[:, 90:], np.s_[:, :40]]  # beyond each box and its margin
    for k, (x1, y1, x2, y2) in enumerate([(20, 10, 60, 50), (70, 20, 110, 60)]):
        after = buffers[k][:, : W * 4].reshape(H, W, 4)
        diff = changed(before[k][:, : W * 4].reshape(H, W, 4), after)
        box = np.zeros((H, W), bool)
        box[y1:y2, x1:x2] = True
        assert diff[box].mean() > 0.9
        assert not diff[far_away[k]].any()
        np.testing.assert_array_equal(after[:, :, 3], before[k][:, : W * 4].reshape(H, W, 4)[:, :, 3])
        np.testing.assert_array_equal(buffers[k][:, W * 4 :], before[k][:, W * 4 :])
    restricted = buffers[1][:, : W * 4].reshape(H, W, 4)[30:50, 80:100, :3]
    assert (restricted == SOLID_COLOUR).all()
    assert probe.counters.frames == 2 and probe.counters.failed_frames == 0


def test_an_error_on_one_frame_paints_that_frame_over_and_the_rest_is_masked(
    host_kernels: HostKernels,
) -> None:
    pyds = fake.Pyds()
    buffers, views = surfaces(2, seed=3)
    before = buffers[1].copy()
    broken = face(20, 10, 60, 50)
    broken.rect_params = None  # type: ignore[assignment]  # metadata that cannot be read
    batch = fake.BatchMeta(
        [fake.FrameMeta(0, 0, 0, [broken]), fake.FrameMeta(1, 1, 0, [face(70, 20, 110, 60)])]
    )
    probe, _ = masking_probe(pyds, host_kernels, {0: "public_space", 1: "public_space"}, views)

    assert probe(None, fake.probe_info(fake.Buffer(pyds, batch))) == "ok"

    assert (views[0][:, :, :3] == SOLID_COLOUR).all()
    assert probe.counters.failed_frames == 1
    diff = changed(before[:, : W * 4].reshape(H, W, 4), views[1])
    assert diff[20:60, 70:110].mean() > 0.9 and not diff[:, :40].any()


def test_a_kernel_failure_paints_the_whole_batch_over(host_kernels: HostKernels) -> None:
    pyds = fake.Pyds()
    _, views = surfaces(2)

    def broken(*_: Any) -> int:
        raise RuntimeError("cudaErrorIllegalAddress")

    batch = fake.BatchMeta([fake.FrameMeta(0, 0, 0, [face(20, 10, 60, 50)]), fake.FrameMeta(0, 1, 1)])
    probe, _ = masking_probe(pyds, host_kernels, {0: "public_space"}, views, mask=broken)

    assert probe(None, fake.probe_info(fake.Buffer(pyds, batch))) == "ok"

    assert all((v[:, :, :3] == SOLID_COLOUR).all() for v in views)
    assert probe.counters.failed_frames == 2


def test_unknown_cameras_and_failed_analysis_are_painted_over(host_kernels: HostKernels) -> None:
    pyds = fake.Pyds()
    _, views = surfaces(2)
    probe, handoff = masking_probe(pyds, host_kernels, {0: "public_space"}, views)
    handoff.failed(0, 5)
    batch = fake.BatchMeta([fake.FrameMeta(0, 0, 5), fake.FrameMeta(9, 1, 0)])  # analysis failed; no camera 9

    probe(None, fake.probe_info(fake.Buffer(pyds, batch)))

    assert all((v[:, :, :3] == SOLID_COLOUR).all() for v in views)
    assert probe.counters.failed_frames == 2


def test_a_detection_the_tracker_dropped_is_masked_all_the_same(host_kernels: HostKernels) -> None:
    """nvtracker may drop or lag objects: the accepted detections reach the masking probe by themselves."""
    pyds = fake.Pyds()
    buffers, views = surfaces(1, seed=5)
    before = buffers[0].copy()
    probe, handoff = masking_probe(pyds, host_kernels, {0: "public_space"}, views)
    handoff.accepted(0, 7, detections((20, 10, 60, 50)))
    batch = fake.BatchMeta([fake.FrameMeta(0, 0, 7)])  # the tracker attached no object

    assert probe(None, fake.probe_info(fake.Buffer(pyds, batch))) == "ok"

    diff = changed(before[:, : W * 4].reshape(H, W, 4), views[0])
    assert diff[10:50, 20:60].mean() > 0.9 and not diff[:, 90:].any()
    assert probe.counters.failed_frames == 0


def test_a_batch_whose_pixels_cannot_be_reached_is_dropped(host_kernels: HostKernels) -> None:
    pyds = fake.Pyds()

    def unmappable(*_: Any) -> Any:
        raise RuntimeError("NvBufSurfaceMap failed")

    probe, _ = masking_probe(pyds, host_kernels, {0: "public_space"}, [], map_surface=unmappable)
    batch = fake.BatchMeta([fake.FrameMeta(0, 0, 0)])
    assert probe(None, fake.probe_info(fake.Buffer(pyds, batch))) == "drop"
    assert probe.counters.dropped_batches == 1


def test_a_profile_that_drops_failed_frames_gets_them_painted_over(
    host_kernels: HostKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame cannot leave a batch alone: where the profile would drop it, it is painted over instead."""
    pyds = fake.Pyds()
    _, views = surfaces(1)
    probe, _ = masking_probe(pyds, host_kernels, {0: "restricted"}, views)
    stream = probe.streams.stream_for(0)
    assert stream is not None and stream.plan.on_failure == "drop"

    def broken(*_: Any) -> Any:
        raise ValueError("tracker state corrupt")

    monkeypatch.setattr(stream, "_track_and_mask", broken)  # the frame step fails closed: "drop"

    probe(
        None,
        fake.probe_info(fake.Buffer(pyds, fake.BatchMeta([fake.FrameMeta(0, 0, 1, [face(1, 1, 9, 9)])]))),
    )

    assert (views[0][:, :, :3] == SOLID_COLOUR).all()
    assert stream.stats.dropped_frames == 1
