"""The metadata feed: anonymous ids that rotate daily, positions, speed and direction, no pixels."""

from __future__ import annotations

import numpy as np

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.dataplane.live.metadata import AnonymousIds, MetadataBuilder

DAY = 86_400.0


def tracked(x: float, track: int = 7) -> Detections:
    found = Detections.build(np.array([[x, 40, x + 20, 60]], np.float32), [0.9], ObjectClass.FACE)
    return Detections(found.boxes, found.scores, found.classes, found.frame_index, np.array([track]))


def test_ids_are_stable_within_a_day_and_unlinkable_across_days_and_cameras() -> None:
    now = [10 * DAY + 100]
    ids = AnonymousIds(secret=b"k" * 32, clock=lambda: now[0])
    today = ids("gate", 7)
    assert len(today) == 12 and int(today, 16) >= 0
    now[0] += 3600
    assert ids("gate", 7) == today
    assert ids("plaza", 7) != today
    now[0] += DAY
    assert ids("gate", 7) != today
    assert AnonymousIds(secret=b"x" * 32, clock=lambda: 10 * DAY)("gate", 7) != today, "keys differ per run"


def test_events_carry_relative_boxes_speed_direction_and_counts_but_no_pixels() -> None:
    feed = MetadataBuilder("gate", AnonymousIds(secret=b"k" * 32))
    first = feed.frame(1.0, tracked(100), width=400, height=200)
    second = feed.frame(1.1, tracked(110), width=400, height=200)  # 10 px right in 0.1 s
    assert first["objects"][0]["speed_px_s"] is None
    obj = second["objects"][0]
    assert obj["class"] == "face" and obj["id"] == first["objects"][0]["id"]
    assert obj["box"] == [0.275, 0.2, 0.325, 0.3]
    assert obj["speed_px_s"] == 100.0 and obj["direction_deg"] == 0.0
    assert second["counts"] == {"face": 1}
    assert set(obj) == {"id", "class", "box", "speed_px_s", "direction_deg"}
    assert "zone_counts" not in second, "no count zones configured, no zone counts"


def test_objects_are_counted_in_the_zones_their_centres_are_in() -> None:
    zones = {
        "left": [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)],
        "door": [(0.6, 0.0), (1.0, 0.0), (1.0, 1.0)],
    }
    feed = MetadataBuilder("gate", AnonymousIds(secret=b"k" * 32), zones)
    both = Detections.concat([tracked(100, 1), tracked(120, 2), tracked(350, 3)])
    event = feed.frame(1.0, both, width=400, height=200)
    # Centres at x = 110, 130 (left half) and 360 (0.9 across, 0.25 down: above the door triangle's diagonal).
    assert event["zone_counts"] == {"left": {"face": 2}, "door": {"face": 1}}
    assert event["counts"] == {"face": 3}
