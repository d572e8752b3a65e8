"""The detection contract shared by every detector, engine and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class ObjectClass(IntEnum):
    """Class ids used in every tensor (also the Triton ensemble's 7th column)."""

    FACE = 0
    PLATE = 1
    PERSON = 2
    VEHICLE = 3
    TEXT = 4

    @classmethod
    def parse(cls, name: str) -> ObjectClass:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(c.name.lower() for c in cls)
            raise ValueError(f"unknown object class {name!r} (known: {known})") from None


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True)
class Detections:
    """Objects found on a batch of frames. N is unbounded: a crowd of 300 faces gives N = 300.

    boxes are x1, y1, x2, y2 in source-frame pixels; frame_index points into the batch; track_ids is -1
    until a tracker assigns one.
    """

    boxes: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    classes: np.ndarray = field(default_factory=lambda: _empty((0,), np.int32))
    frame_index: np.ndarray = field(default_factory=lambda: _empty((0,), np.int32))
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4):
            raise ValueError(f"boxes must be [N,4], got {self.boxes.shape}")
        for name in ("scores", "classes", "frame_index", "track_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, boxes has {n}")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def build(
        cls,
        boxes: np.ndarray,
        scores: np.ndarray,
        object_class: ObjectClass,
        frame_index: np.ndarray | int = 0,
    ) -> Detections:
        """Detections of one class, as a detector decoder produces them."""
        n = len(boxes)
        frames = np.broadcast_to(np.asarray(frame_index, dtype=np.int32), (n,)).copy()
        return cls(
            boxes=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
            scores=np.asarray(scores, dtype=np.float32).reshape(n),
            classes=np.full(n, int(object_class), dtype=np.int32),
            frame_index=frames,
            track_ids=np.full(n, -1, dtype=np.int64),
        )

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> Detections:
        """The Triton ensemble's DETECTIONS rows [..., 7] (frame index, x1, y1, x2, y2, score, class);
        padding rows, with frame index -1, are left out."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 7)
        rows = rows[rows[:, 0] >= 0]
        return cls(
            boxes=np.ascontiguousarray(rows[:, 1:5]),
            scores=rows[:, 5].copy(),
            classes=rows[:, 6].astype(np.int32),
            frame_index=rows[:, 0].astype(np.int32),
            track_ids=np.full(len(rows), -1, dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        return cls(
            boxes=np.concatenate([p.boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            classes=np.concatenate([p.classes for p in parts]),
            frame_index=np.concatenate([p.frame_index for p in parts]),
            track_ids=np.concatenate([p.track_ids for p in parts]),
        )

    def select(self, mask: np.ndarray) -> Detections:
        return Detections(
            boxes=self.boxes[mask],
            scores=self.scores[mask],
            classes=self.classes[mask],
            frame_index=self.frame_index[mask],
            track_ids=self.track_ids[mask],
        )

    def for_frame(self, index: int) -> Detections:
        return self.select(self.frame_index == index)

    def renumbered(self, frame_index: int) -> Detections:
        """The same detections, all on batch position `frame_index`."""
        return Detections(
            self.boxes,
            self.scores,
            self.classes,
            np.full(len(self), frame_index, dtype=np.int32),
            self.track_ids,
        )

    def counts_by_class(self) -> dict[str, int]:
        ids, counts = np.unique(self.classes, return_counts=True)
        return {ObjectClass(int(i)).name.lower(): int(c) for i, c in zip(ids, counts, strict=True)}
