"""Temporal hold-over with a light IoU tracker.

Detectors miss a face for a frame or two (motion blur, a turned head); without hold-over it flashes
unmasked. Each track remembers its last box and velocity; a track not seen is kept, moved by its velocity
and grown by how far it may have drifted, for `holdover_frames` frames.
"""

from __future__ import annotations

import numpy as np

from .boxes import iou_matrix
from .detections import Detections

MATCH_IOU = 0.2
VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the velocity estimate
DRIFT_GROWTH = 0.1  # extra margin per missed frame, as a share of the box size


def greedy_match(iou: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row, col) matched greedily by descending IoU, each row and column used once."""
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
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
        self.velocity = np.zeros((0, 4), dtype=np.float32)
        self.classes = np.zeros(0, dtype=np.int32)
        self.scores = np.zeros(0, dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)
        self.missed = np.zeros(0, dtype=np.int32)
        self._next_id = 0

    def __len__(self) -> int:
        return len(self.boxes)

    def update(self, found: Detections, holdover_frames: int) -> Detections:
        """Match one frame's detections to tracks; return what must be masked on this frame."""
        predicted = self.boxes + self.velocity
        iou = iou_matrix(predicted, found.boxes)
        iou[self.classes[:, None] != found.classes[None, :]] = 0.0
        t_idx, d_idx = greedy_match(iou, MATCH_IOU)

        # Matched tracks take the detected box and refresh their velocity.
        displacement = found.boxes[d_idx] - self.boxes[t_idx]
        self.velocity[t_idx] = (
            VELOCITY_SMOOTHING * displacement + (1 - VELOCITY_SMOOTHING) * self.velocity[t_idx]
        )
        self.boxes[t_idx] = found.boxes[d_idx]
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
        self.boxes = self.boxes + self.velocity
        self.missed += 1
        self._expire(holdover_frames)
        return self._current()

    def _open(self, found: Detections) -> None:
        n = len(found)
        self.boxes = np.concatenate([self.boxes, found.boxes])
        self.velocity = np.concatenate([self.velocity, np.zeros((n, 4), dtype=np.float32)])
        self.classes = np.concatenate([self.classes, found.classes])
        self.scores = np.concatenate([self.scores, found.scores])
        self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + n)])
        self.missed = np.concatenate([self.missed, np.zeros(n, dtype=np.int32)])
        self._next_id += n

    def _expire(self, holdover_frames: int) -> None:
        keep = self.missed <= holdover_frames
        for name in ("boxes", "velocity", "classes", "scores", "ids", "missed"):
            setattr(self, name, getattr(self, name)[keep])

    def _current(self) -> Detections:
        """Boxes to mask now; coasting ones grown by their possible drift."""
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        speed = np.abs(self.velocity).max(axis=1)
        pad = self.missed * (DRIFT_GROWTH * np.maximum(w, h) + speed)
        boxes = self.boxes + np.stack([-pad, -pad, pad, pad], axis=1)
        return Detections(
            boxes=boxes.astype(np.float32),
            scores=self.scores.copy(),
            classes=self.classes.copy(),
            frame_index=np.zeros(len(boxes), dtype=np.int32),
            track_ids=self.ids.copy(),
        )
