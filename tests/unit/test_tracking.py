"""Hold-over tracking: missed detections stay masked for a while, moving boxes are predicted forward."""

from __future__ import annotations

import numpy as np

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.tracking import HoldoverTracker, greedy_match

NOTHING = Detections()


def face(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> Detections:
    return Detections.build(np.array([[x1, y1, x2, y2]], np.float32), [score], ObjectClass.FACE)


def covers(outer: np.ndarray, inner: np.ndarray) -> bool:
    return bool(
        outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]
    )


def test_a_face_stays_masked_through_a_two_frame_gap() -> None:
    tracker = HoldoverTracker()
    seen = tracker.update(face(100, 100, 140, 150), holdover_frames=2)
    assert len(seen) == 1
    for _ in range(2):
        held = tracker.update(NOTHING, holdover_frames=2)
        assert len(held) == 1
        assert covers(held.boxes[0], np.array([100, 100, 140, 150]))
        assert held.track_ids.tolist() == seen.track_ids.tolist()


def test_a_lost_face_is_dropped_after_holdover_frames() -> None:
    tracker = HoldoverTracker()
    tracker.update(face(100, 100, 140, 150), holdover_frames=2)
    tracker.update(NOTHING, holdover_frames=2)
    tracker.update(NOTHING, holdover_frames=2)
    assert len(tracker.update(NOTHING, holdover_frames=2)) == 0
    assert len(tracker) == 0


def test_predict_holds_and_expires_like_update_with_nothing() -> None:
    tracker = HoldoverTracker()
    tracker.update(face(100, 100, 140, 150), holdover_frames=1)
    assert len(tracker.predict(holdover_frames=1)) == 1
    assert len(tracker.predict(holdover_frames=1)) == 0


def test_a_refound_face_keeps_its_track_and_its_exact_box() -> None:
    tracker = HoldoverTracker()
    first = tracker.update(face(100, 100, 140, 150), holdover_frames=3)
    tracker.update(NOTHING, holdover_frames=3)
    again = tracker.update(face(103, 101, 143, 151), holdover_frames=3)
    assert again.track_ids.tolist() == first.track_ids.tolist()
    np.testing.assert_allclose(again.boxes, [[103, 101, 143, 151]])


def test_a_moving_box_is_predicted_forward_by_its_velocity() -> None:
    tracker = HoldoverTracker()
    for x in (0, 10, 20, 30):
        tracker.update(face(100 + x, 100, 140 + x, 140), holdover_frames=5)
    coasting = tracker.predict(holdover_frames=5)
    centre_x = (coasting.boxes[0, 0] + coasting.boxes[0, 2]) / 2
    centre_y = (coasting.boxes[0, 1] + coasting.boxes[0, 3]) / 2
    assert 150 < centre_x <= 160  # moved on to the right, not past one full step
    assert centre_y == 120
    assert tracker.velocity[0, 0] > 5 and tracker.velocity[0, 1] == 0


def test_a_moving_face_keeps_one_track() -> None:
    tracker = HoldoverTracker()
    ids = set()
    for x in range(0, 100, 8):  # 8 px per frame on a 40 px face
        ids.update(tracker.update(face(x, 0, x + 40, 40), holdover_frames=2).track_ids.tolist())
    assert len(ids) == 1


def test_coasting_boxes_grow_with_each_missed_frame() -> None:
    tracker = HoldoverTracker()
    tracker.update(face(100, 100, 140, 140), holdover_frames=5)
    widths = [float(np.diff(tracker.predict(holdover_frames=5).boxes[0, ::2])[0]) for _ in range(3)]
    assert 40 < widths[0] < widths[1] < widths[2]


def test_a_detected_box_is_not_grown() -> None:
    tracker = HoldoverTracker()
    out = tracker.update(face(100, 100, 140, 140), holdover_frames=5)
    np.testing.assert_allclose(out.boxes, [[100, 100, 140, 140]])


def test_two_classes_do_not_match_each_other() -> None:
    tracker = HoldoverTracker()
    tracker.update(face(100, 100, 140, 140), holdover_frames=5)
    plate = Detections.build(np.array([[100, 100, 140, 140]], np.float32), [0.9], ObjectClass.PLATE)
    out = tracker.update(plate, holdover_frames=5)
    assert sorted(out.classes.tolist()) == [ObjectClass.FACE, ObjectClass.PLATE]
    assert len(set(out.track_ids.tolist())) == 2


def test_new_faces_open_new_tracks_with_fresh_ids() -> None:
    tracker = HoldoverTracker()
    a = tracker.update(face(0, 0, 40, 40), holdover_frames=5)
    both = tracker.update(
        Detections.concat([face(1, 0, 41, 40), face(300, 300, 340, 340)]), holdover_frames=5
    )
    assert len(both) == 2
    assert a.track_ids[0] in both.track_ids
    assert len(set(both.track_ids.tolist())) == 2


def test_greedy_match_pairs_best_affinity_first_each_used_once() -> None:
    affinity = np.array(
        [
            [0.9, 0.8, 0.0],
            [0.85, 0.3, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    rows, cols = greedy_match(affinity)
    # (0,0) wins; row 1 then takes its next best free column; row 2 and column 2 have nothing
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 1)]


def test_greedy_match_lets_a_stronger_later_pair_win() -> None:
    affinity = np.array([[0.3, 0.2], [0.9, 0.0]])
    rows, cols = greedy_match(affinity)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_greedy_match_of_nothing_is_empty() -> None:
    rows, cols = greedy_match(np.zeros((3, 0)))
    assert rows.shape == cols.shape == (0,)


def test_a_coasting_box_keeps_its_size_and_grows_at_most_by_half() -> None:
    tracker = HoldoverTracker()
    tracker.update(face(100, 100, 140, 140), holdover_frames=30)
    # The detector's box jitters in size while the face moves 20 px per frame to the right.
    tracker.update(face(116, 96, 168, 148), holdover_frames=30)
    sizes = []
    for _ in range(20):
        box = tracker.predict(holdover_frames=30).boxes[0]
        sizes.append(box[2] - box[0])
    assert max(sizes) <= 52 * 2 + 1e-3, "grown by at most half its size on each side"
    assert box[0] > 300, "still moved along by the centre's velocity"
