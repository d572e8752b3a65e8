"""The metadata feed: where objects are and how they move, per camera and frame. No pixels, no crops,
no identities: track ids are keyed hashes that change every UTC day and with every start of the server,
so a person cannot be followed from one day to the next.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ...core.detections import Detections, ObjectClass
from ...core.masks import inside_polygon

FORGET_AFTER_S = 5.0  # a track unseen this long is forgotten (its last position is no longer needed)


class AnonymousIds:
    """Track id -> a 12-hex-digit id that is stable within a UTC day and unlinkable across days."""

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret if secret is not None else os.urandom(32)  # never stored, never logged
        self._clock = clock

    def __call__(self, camera_id: str, track_id: int) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        key = hmac.new(self._secret, day.encode(), hashlib.sha256).digest()
        return hmac.new(key, f"{camera_id}:{track_id}".encode(), hashlib.sha256).hexdigest()[:12]


class MetadataBuilder:
    """One camera's feed: positions relative to the frame, speed and direction from the last sighting,
    counts per class in the whole frame and in each named count zone (by the object's centre)."""

    def __init__(
        self,
        camera_id: str,
        ids: AnonymousIds,
        count_zones: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.ids = ids
        self.count_zones = {
            name: np.asarray(polygon, dtype=np.float64) for name, polygon in (count_zones or {}).items()
        }
        self._last: dict[int, tuple[float, float, float]] = {}  # track -> (pts, x, y) of its centre

    def frame(self, pts_s: float, tracked: Detections, width: int, height: int) -> dict[str, Any]:
        objects = []
        for box, object_class, track in zip(
            tracked.boxes.tolist(), tracked.classes.tolist(), tracked.track_ids.tolist(), strict=True
        ):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            speed, direction = None, None
            if track in self._last and pts_s > self._last[track][0]:
                then, px, py = self._last[track]
                dx, dy = cx - px, cy - py
                speed = round(math.hypot(dx, dy) / (pts_s - then), 1)  # pixels per second
                direction = round(math.degrees(math.atan2(dy, dx)) % 360, 1)  # 0 = right, 90 = down
            self._last[track] = (pts_s, cx, cy)
            objects.append(
                {
                    "id": self.ids(self.camera_id, track),
                    "class": ObjectClass(object_class).name.lower(),
                    "box": [
                        round(box[0] / width, 4),
                        round(box[1] / height, 4),
                        round(box[2] / width, 4),
                        round(box[3] / height, 4),
                    ],
                    "speed_px_s": speed,
                    "direction_deg": direction,
                }
            )
        self._last = {t: v for t, v in self._last.items() if pts_s - v[0] <= FORGET_AFTER_S}
        feed = {
            "camera": self.camera_id,
            "pts": round(pts_s, 3),
            "objects": objects,
            "counts": tracked.counts_by_class(),
        }
        if self.count_zones:
            feed["zone_counts"] = self._zone_counts(tracked, width, height)
        return feed

    def _zone_counts(self, tracked: Detections, width: int, height: int) -> dict[str, dict[str, int]]:
        boxes = tracked.boxes.astype(np.float64)
        xs, ys = (boxes[:, 0] + boxes[:, 2]) / (2 * width), (boxes[:, 1] + boxes[:, 3]) / (2 * height)
        counts = {}
        for name, polygon in self.count_zones.items():
            inside = inside_polygon(xs, ys, polygon)
            classes, numbers = np.unique(tracked.classes[inside], return_counts=True)
            counts[name] = {
                ObjectClass(c).name.lower(): int(n) for c, n in zip(classes, numbers, strict=True)
            }
        return counts
