"""The `cityveil_detect` ensemble's output: Detections -> DETECTIONS [B, K, 7] (`Detections.from_rows`
reads it back).

Row b holds frame b's objects as (frame index, x1, y1, x2, y2, score, class), padded to the frame with the
most objects by rows whose frame index is -1: a batched Triton model keeps its batch dimension. A batch
without objects still has one padding row per frame: a tensor of zero bytes is one that some clients
(nvinferserver's output buffers among them) cannot hand over.
"""

from __future__ import annotations

import numpy as np

from ..core.detections import Detections

COLUMNS = 7
NO_FRAME = -1.0
DEFAULT_SCALE = 1.0  # the inference scale of a request that sends none (nvinferserver sends none)


def to_rows(found: Detections, batch: int) -> np.ndarray:
    per_frame = np.bincount(found.frame_index, minlength=batch)
    rows = np.full((batch, int(per_frame.max(initial=1)), COLUMNS), NO_FRAME, np.float32)
    order = np.argsort(found.frame_index, kind="stable")
    frames = found.frame_index[order]
    slot = np.arange(len(order)) - np.searchsorted(frames, frames)  # position within its frame
    rows[frames, slot] = np.column_stack(
        [frames, found.boxes[order], found.scores[order], found.classes[order]]
    ).astype(np.float32)
    return rows
