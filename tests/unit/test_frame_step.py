"""The shared frame step with a fake detector: what gets masked, when the detector runs, failing closed."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.core.policy import CameraContext, DetectorTraits
from orchestrator.core.profiles import BUILTIN_PROFILES, Profile
from orchestrator.core.yuv import Frame, Yuv420Frame
from orchestrator.dataplane.frame_step import StreamAnonymizer, process_streams

FACE, PLATE = ObjectClass.FACE, ObjectClass.PLATE
W, H = 96, 64
FACE_BOX = (20, 10, 50, 40)
PLATE_BOX = (60, 44, 90, 54)


class FakeDetector:
    """Finds fixed boxes on the frames whose marker pixel (frame[0, 0, 0]) is in `found_on`."""

    def __init__(
        self,
        object_class: ObjectClass,
        boxes: list[tuple[int, int, int, int]],
        found_on: set[int] | None = None,
        score: float = 0.9,
        error: Exception | None = None,
        reliable_min_px: float = 20,
    ) -> None:
        self.object_class = object_class
        self.traits = DetectorTraits(reliable_min_px=reliable_min_px, box_slack=0.0)
        self.label = f"fake_{object_class.name.lower()}:1"
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.found_on = found_on
        self.score = score
        self.error = error
        self.seen: list[int] = []
        self.calls: list[tuple[int, float, float]] = []

    def detect(self, frames: list[Frame], scale: float, threshold: float) -> Detections:
        if self.error is not None:
            raise self.error
        self.calls.append((len(frames), scale, threshold))
        parts = []
        for j, frame in enumerate(frames):
            marker = int(frame.data[0, 0] if isinstance(frame, Yuv420Frame) else frame[0, 0, 0])
            self.seen.append(marker)
            if self.found_on is None or marker in self.found_on:
                scores = np.full(len(self.boxes), self.score)
                parts.append(Detections.build(self.boxes, scores, self.object_class, j))
        return Detections.concat(parts)


def profile(**overrides: object) -> Profile:
    data: dict = {
        "name": "unit",
        "style": "solid",
        "classes": {
            "face": {"threshold": 0.4, "min_px": 20, "margin": 0.0, "strength": 1.0},
            "plate": {"threshold": 0.4, "min_px": 20, "margin": 0.0, "strength": 1.0},
        },
        "holdover_s": 0.0,
        "max_detect_interval": 1,
    }
    data.update(overrides)
    return Profile.model_validate(data)


def frames(n: int, start: int = 0, seed: int = 0) -> list[np.ndarray]:
    """Random frames whose marker pixel holds their number in the stream."""
    rng = np.random.default_rng(seed)
    out = []
    for number in range(start, start + n):
        frame = rng.integers(100, 200, size=(H, W, 3), dtype=np.uint8)  # never the solid grey 96
        frame[0, 0, :] = number
        out.append(frame)
    return out


def anonymizer(p: Profile, *detectors: FakeDetector, zones=()) -> StreamAnonymizer:
    context = CameraContext(profile=p, width=W, height=H, fps=25.0, privacy_zones=zones)
    return StreamAnonymizer(context, {d.object_class: d for d in detectors})


def solid(frame: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x1, y1, x2, y2 = box
    return bool((frame[y1:y2, x1:x2] == SOLID_COLOUR).all())


def box_mask(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    inside = np.zeros((H, W), bool)
    for x1, y1, x2, y2 in boxes:
        inside[y1:y2, x1:x2] = True
    return inside


def test_faces_are_masked_exactly_on_the_frames_where_found() -> None:
    detector = FakeDetector(FACE, [FACE_BOX], found_on={0, 2})
    stream = anonymizer(profile(classes={"face": profile().classes["face"]}), detector)
    batch = frames(3)
    originals = [f.copy() for f in batch]

    results = stream.process(batch)

    outside = ~box_mask(FACE_BOX)
    for i in (0, 2):
        assert results[i].image is batch[i]
        assert solid(batch[i], FACE_BOX)
        np.testing.assert_array_equal(batch[i][outside], originals[i][outside])
        assert results[i].detections == {"face": 1} and results[i].masks == {"face": 1}
    np.testing.assert_array_equal(batch[1], originals[1])  # no hold-over in this profile
    assert detector.calls == [(3, pytest.approx(1.0), pytest.approx(0.4))]


def test_scores_below_the_class_threshold_are_not_masked() -> None:
    stream = anonymizer(profile(), FakeDetector(FACE, [FACE_BOX], score=0.3))
    batch = frames(2)
    originals = [f.copy() for f in batch]
    results = stream.process(batch)
    for frame, original, result in zip(batch, originals, results, strict=True):
        np.testing.assert_array_equal(frame, original)
        assert result.detections == {}


def test_the_detector_runs_at_the_class_cadence_and_tracks_fill_the_frames_between() -> None:
    p = profile(
        classes={"face": {"threshold": 0.4, "min_px": 20, "margin": 0.0, "strength": 1.0, "detect_every": 2}}
    )
    detector = FakeDetector(FACE, [FACE_BOX])
    stream = anonymizer(p, detector)

    first, second = frames(3), frames(3, start=3)
    results = stream.process(first) + stream.process(second)

    assert detector.seen == [0, 2, 4]
    assert [r.analysed for r in results] == [True, False, True, False, True, False]
    for frame in first + second:
        assert solid(frame, FACE_BOX)  # also on frames 1, 3 and 5, from the track
    assert stream.stats.analysed_frames == 3
    assert stream.stats.masks["face"] == 6


def test_requested_load_interval_is_capped_by_the_profile() -> None:
    detector = FakeDetector(FACE, [FACE_BOX])
    context = CameraContext(profile=profile(max_detect_interval=3), width=W, height=H)
    stream = StreamAnonymizer(context, {FACE: detector}, detect_interval=10)
    stream.process(frames(7))
    assert detector.seen == [0, 3, 6]


def test_a_failing_detector_masks_the_whole_batch_when_the_profile_says_so() -> None:
    detector = FakeDetector(FACE, [FACE_BOX], error=RuntimeError("inference server gone"))
    stream = anonymizer(BUILTIN_PROFILES["residential"], detector)
    batch = frames(3)

    results = stream.process(batch)

    assert all(r.failed and r.image is not None for r in results)
    for frame in batch:
        assert (frame == SOLID_COLOUR).all()
    assert stream.stats.failed_frames == 3
    assert stream.stats.dropped_frames == 0
    assert stream.stats.masks["frame"] == 3


def test_a_failing_detector_drops_the_batch_on_a_restricted_profile() -> None:
    detector = FakeDetector(FACE, [FACE_BOX], error=ValueError("corrupt tensor"))
    stream = anonymizer(BUILTIN_PROFILES["restricted"], detector)

    results = stream.process(frames(4))

    assert [r.image for r in results] == [None] * 4
    assert all(r.failed for r in results)
    assert stream.stats.failed_frames == 4
    assert stream.stats.dropped_frames == 4
    assert stream.stats.frames == 4


def test_one_failing_detector_fails_the_batch_even_if_another_works() -> None:
    good = FakeDetector(PLATE, [PLATE_BOX])
    bad = FakeDetector(FACE, [FACE_BOX], error=RuntimeError("timeout"))
    stream = anonymizer(profile(), good, bad)
    batch = frames(2)
    results = stream.process(batch)
    assert all(r.failed for r in results)
    assert all((f == SOLID_COLOUR).all() for f in batch)


def test_the_stream_recovers_after_a_failed_batch() -> None:
    detector = FakeDetector(FACE, [FACE_BOX], error=RuntimeError("blip"))
    stream = anonymizer(profile(), detector)
    stream.process(frames(2))
    detector.error = None
    batch = frames(2, start=2)
    results = stream.process(batch)
    assert not any(r.failed for r in results)
    assert all(solid(f, FACE_BOX) for f in batch)
    assert stream.stats.failed_frames == 2 and stream.stats.frames == 4


def test_privacy_zones_are_masked_even_without_detections() -> None:
    right_half = ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))
    stream = anonymizer(profile(), FakeDetector(FACE, []), zones=(right_half,))
    batch = frames(2)
    originals = [f.copy() for f in batch]

    results = stream.process(batch)

    for frame, original, result in zip(batch, originals, results, strict=True):
        assert (frame[:, W // 2 :] == SOLID_COLOUR).all()
        np.testing.assert_array_equal(frame[:, : W // 2], original[:, : W // 2])
        assert result.detections == {} and not result.failed


def test_stats_count_detections_and_masks_per_class() -> None:
    second_face = (60, 5, 80, 30)
    faces = FakeDetector(FACE, [FACE_BOX, second_face])
    plates = FakeDetector(PLATE, [PLATE_BOX])
    stream = anonymizer(profile(), faces, plates)
    batch = frames(3)

    results = stream.process(batch)

    assert results[0].detections == {"face": 2, "plate": 1}
    stats = stream.stats.as_dict()
    assert stats["frames"] == 3 and stats["analysed_frames"] == 3 and stats["failed_frames"] == 0
    assert stats["detections"] == {"face": 6, "plate": 3}
    assert stats["masks"] == {"face": 6, "plate": 3}
    for frame in batch:
        assert solid(frame, FACE_BOX) and solid(frame, second_face) and solid(frame, PLATE_BOX)


def test_classes_outside_the_profile_are_never_detected() -> None:
    plates = FakeDetector(PLATE, [PLATE_BOX])
    stream = anonymizer(profile(classes={"face": profile().classes["face"]}), FakeDetector(FACE, []), plates)
    stream.process(frames(2))
    assert plates.calls == []
    assert stream.model_labels == {"face": "fake_face:1"}


def test_a_crowd_lowers_the_threshold_given_to_the_detector() -> None:
    crowd = [(x, y, x + 4, y + 4) for x in range(0, 90, 6) for y in range(8, 60, 6)]  # 135 faces
    detector = FakeDetector(FACE, crowd)
    stream = anonymizer(profile(crowd_saturation=30), detector)
    for start in range(0, 20, 2):
        stream.process(frames(2, start=start))
    thresholds = [t for _, _, t in detector.calls]
    assert thresholds[0] == pytest.approx(0.4)
    assert thresholds[-1] < 0.35
    assert stream.plan.crowd_factor > 0.8


def test_a_failure_while_masking_publishes_that_frame_fully_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.dataplane.frame_step as frame_step

    calls = {"n": 0}
    real_mask_boxes = frame_step.mask_boxes

    def flaky_mask_boxes(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError("no room for the blur")
        return real_mask_boxes(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(frame_step, "mask_boxes", flaky_mask_boxes)
    stream = anonymizer(profile(), FakeDetector(FACE, [FACE_BOX]))
    results = stream.process(frames(3))
    assert [r.failed for r in results] == [False, True, False]
    assert (results[1].image == np.asarray(SOLID_COLOUR, np.uint8)).all()
    assert solid(results[0].image, FACE_BOX) and solid(results[2].image, FACE_BOX)
    assert stream.stats.failed_frames == 1


def test_an_object_appearing_between_detections_is_masked_from_a_later_frame_of_the_batch() -> None:
    p = profile(
        classes={"face": {"threshold": 0.4, "min_px": 20, "margin": 0.0, "strength": 1.0, "detect_every": 3}}
    )
    detector = FakeDetector(FACE, [FACE_BOX], found_on={3, 4, 5})  # the face enters on frame 2 or 3
    stream = anonymizer(p, detector)
    results = stream.process(frames(6))
    assert detector.seen == [0, 3]
    assert not solid(results[0].image, FACE_BOX)
    assert all(solid(r.image, FACE_BOX) for r in results[1:])


def test_frames_of_several_streams_share_one_inference_call() -> None:
    detector = FakeDetector(FACE, [FACE_BOX])
    streams = [anonymizer(profile(), detector) for _ in range(3)]
    batches = [(stream, frames(2, seed=k)) for k, stream in enumerate(streams)]

    results = process_streams(batches)

    assert [calls for calls, _, _ in detector.calls] == [6]  # 3 cameras x 2 frames, one call
    for (_, batch), stream_results in zip(batches, results, strict=True):
        assert len(stream_results) == 2
        assert all(solid(frame, FACE_BOX) for frame in batch)


def test_a_failed_shared_call_fails_closed_only_the_streams_in_it() -> None:
    broken = FakeDetector(FACE, [FACE_BOX], error=RuntimeError("inference server gone"))
    working = FakeDetector(FACE, [FACE_BOX])
    hit, spared = anonymizer(profile(), broken), anonymizer(profile(), working)
    hit_frames, spared_frames = frames(2), frames(2, seed=1)

    hit_results, spared_results = process_streams([(hit, hit_frames), (spared, spared_frames)])

    assert all(r.failed for r in hit_results)
    assert all((f == SOLID_COLOUR).all() for f in hit_frames)
    assert not any(r.failed for r in spared_results)
    assert all(solid(f, FACE_BOX) and not (f == SOLID_COLOUR).all() for f in spared_frames)


def test_after_a_failed_detection_frames_between_detections_stay_fully_masked() -> None:
    p = profile(
        classes={"face": {"threshold": 0.4, "min_px": 20, "margin": 0.0, "strength": 1.0, "detect_every": 2}}
    )
    detector = FakeDetector(FACE, [FACE_BOX], error=RuntimeError("timeout"))
    stream = anonymizer(p, detector)
    first = stream.process(frames(1))  # frame 0: looked for, failed
    detector.error = None
    between = stream.process(frames(1, start=1))  # frame 1: not due, tracks are stale
    again = stream.process(frames(2, start=2))  # frame 2: looked for again; frame 3 rides its track

    assert first[0].failed and between[0].failed
    assert (between[0].image == np.asarray(SOLID_COLOUR, np.uint8)).all()
    assert not any(r.failed for r in again)
    assert all(solid(r.image, FACE_BOX) for r in again)


def test_shedding_load_detects_less_often_but_never_beyond_the_profile_cap() -> None:
    p = profile(max_detect_interval=3)
    detector = FakeDetector(FACE, [FACE_BOX])
    stream = anonymizer(p, detector)
    stream.shed_load(10)
    results = stream.process(frames(7))
    assert detector.seen == [0, 3, 6], "every 3rd frame: the profile's cap, not 10"
    assert all(solid(r.image, FACE_BOX) for r in results)
