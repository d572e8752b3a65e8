"""Temporal hold-over with a light IoU tracker.

Detectors miss a face for a frame or two (motion blur, a turned head); without hold-over it flashes
unmasked. Each track remembers its last box and velocity; a track not seen is kept, moved by its velocity
and grown by how far it may have drifted, for `holdover_frames` frames.
"""

from __future__ import annotations

import numpy as np

from .detections import Detections

# A detection continues a track when its centre lies within this many track sizes of the prediction,
# per frame since the track was last seen: fast walkers move most of a face width between frames.
MATCH_GATE = 1.0
VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the velocity estimate
# A coasting box grows per missed frame by a share of its size and of its speed (the velocity may be off),
# up to half its size: beyond that a lost track would mask whole bodies and erase the analytics.
DRIFT_GROWTH = 0.1
DRIFT_SPEED_SHARE = 0.5
MAX_DRIFT = 0.5


def centre_affinity(tracks: np.ndarray, found: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """[T,D] affinity in (0, 1] for pairs whose centres are within `gate` track sizes, else 0."""
    tc, fc = _centres(tracks), _centres(found)
    size = np.maximum(tracks[:, 2] - tracks[:, 0], tracks[:, 3] - tracks[:, 1])
    distance = np.linalg.norm(tc[:, None, :] - fc[None, :, :], axis=2) / np.maximum(size, 1.0)[:, None]
    return np.clip(1.0 - distance / gate[:, None], 0.0, None)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def greedy_match(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row, col) of positive affinity, best first, each row and column used once."""
    rows, cols = np.nonzero(affinity > 0)
    order = np.argsort(-affinity[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


class HoldoverTracker:
    """Tracks of one stream. Call `update` on frames with detections and `predict` on frames without."""

    def __init__(self) -> None:
        self.boxes = np.zeros((0, 4), dtype=np.float32)
        self.last_seen = np.zeros((0, 4), dtype=np.float32)  # the box as last detected
        self.velocity = np.zeros((0, 2), dtype=np.float32)  # of the box centre, pixels per frame
        self.classes = np.zeros(0, dtype=np.int32)
        self.scores = np.zeros(0, dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)
        self.missed = np.zeros(0, dtype=np.int32)
        self._next_id = 0

    def __len__(self) -> int:
        return len(self.boxes)

    def update(self, found: Detections, holdover_frames: int) -> Detections:
        """Match one frame's detections to tracks; return what must be masked on this frame."""
        predicted = self._moved()
        affinity = centre_affinity(predicted, found.boxes, MATCH_GATE * (1 + self.missed))
        affinity[self.classes[:, None] != found.classes[None, :]] = 0.0
        t_idx, d_idx = greedy_match(affinity)

        # Matched tracks take the detected box; velocity is per frame since the track was last seen.
        elapsed = (self.missed[t_idx] + 1)[:, None]
        displacement = (_centres(found.boxes[d_idx]) - _centres(self.last_seen[t_idx])) / elapsed
        self.velocity[t_idx] = (
            VELOCITY_SMOOTHING * displacement + (1 - VELOCITY_SMOOTHING) * self.velocity[t_idx]
        )
        self.boxes[t_idx] = found.boxes[d_idx]
        self.last_seen[t_idx] = found.boxes[d_idx]
        self.scores[t_idx] = found.scores[d_idx]
        self.missed[t_idx] = 0

        # Unmatched tracks coast on their velocity; new detections open tracks.
        lost = np.ones(len(self.boxes), dtype=bool)
        lost[t_idx] = False
        self.boxes[lost] = predicted[lost]
        self.missed[lost] += 1
        new = np.ones(len(found), dtype=bool)
        new[d_idx] = False
        self._open(found.select(new))
        self._expire(holdover_frames)
        return self._current()

    def predict(self, holdover_frames: int) -> Detections:
        """A frame without detection: every track coasts one frame (no track is dropped early)."""
        self.boxes = self._moved()
        self.missed += 1
        self._expire(holdover_frames)
        return self._current()

    def _moved(self) -> np.ndarray:
        """Every box shifted by its centre's velocity (sizes are kept: size changes are noisy)."""
        return self.boxes + np.tile(self.velocity, 2)

    def _open(self, found: Detections) -> None:
        n = len(found)
        self.boxes = np.concatenate([self.boxes, found.boxes])
        self.last_seen = np.concatenate([self.last_seen, found.boxes])
        self.velocity = np.concatenate([self.velocity, np.zeros((n, 2), dtype=np.float32)])
        self.classes = np.concatenate([self.classes, found.classes])
        self.scores = np.concatenate([self.scores, found.scores])
        self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + n)])
        self.missed = np.concatenate([self.missed, np.zeros(n, dtype=np.int32)])
        self._next_id += n

    def _expire(self, holdover_frames: int) -> None:
        keep = self.missed <= holdover_frames
        for name in ("boxes", "last_seen", "velocity", "classes", "scores", "ids", "missed"):
            setattr(self, name, getattr(self, name)[keep])

    def _current(self) -> Detections:
        """Boxes to mask now; coasting ones grown by their possible drift."""
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        size = np.maximum(w, h)
        speed = np.linalg.norm(self.velocity, axis=1)
        pad = np.minimum(self.missed * (DRIFT_GROWTH * size + DRIFT_SPEED_SHARE * speed), MAX_DRIFT * size)
        boxes = self.boxes + np.stack([-pad, -pad, pad, pad], axis=1)
        return Detections(
            boxes=boxes.astype(np.float32),
            scores=self.scores.copy(),
            classes=self.classes.copy(),
            frame_index=np.zeros(len(boxes), dtype=np.int32),
            track_ids=self.ids.copy(),
        )
