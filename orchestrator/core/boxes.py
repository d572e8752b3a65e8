"""Vectorised box arithmetic: IoU, non-maximum suppression, margins, clipping."""

from __future__ import annotations

import numpy as np


def areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [N,4] and [M,4] boxes -> [N,M]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    The IoU matrix is computed once; the greedy pass walks score order over a boolean row per kept box,
    so the Python loop runs once per *kept* box, not per pair.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    overlaps = iou_matrix(boxes[order], boxes[order]) > iou_threshold
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[np.asarray(keep, dtype=np.int64)]


def grow(boxes: np.ndarray, margin: float | np.ndarray, pixels: float | np.ndarray = 0.0) -> np.ndarray:
    """Grow each box on every side by `margin` times its size (0.1 = 10% per side) plus `pixels`."""
    margin = np.asarray(margin, dtype=np.float32)
    w = (boxes[:, 2] - boxes[:, 0]) * margin + pixels
    h = (boxes[:, 3] - boxes[:, 1]) * margin + pixels
    return np.stack([boxes[:, 0] - w, boxes[:, 1] - h, boxes[:, 2] + w, boxes[:, 3] + h], axis=1)


def to_pixel_bounds(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer pixel bounds covering each box fully (floor of the start, ceil of the end), clipped."""
    out = np.empty((len(boxes), 4), dtype=np.int64)
    out[:, 0] = np.clip(np.floor(boxes[:, 0]), 0, width)
    out[:, 1] = np.clip(np.floor(boxes[:, 1]), 0, height)
    out[:, 2] = np.clip(np.ceil(boxes[:, 2]), 0, width)
    out[:, 3] = np.clip(np.ceil(boxes[:, 3]), 0, height)
    return out
