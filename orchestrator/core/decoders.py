"""Turn raw detector outputs into boxes in source-frame pixels. Vectorised; no cap on the count.

Both decoders take host (NumPy) arrays, as ONNX Runtime and Triton return them, and the factors that map
network-input pixels back to source pixels: source = network / (scale_x, scale_y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .boxes import nms
from .detections import Detections, ObjectClass

CENTERFACE_STRIDE = 4


def _local_peaks(heat: np.ndarray) -> np.ndarray:
    """Cells that are the maximum of their 3x3 neighbourhood ([B,h,w] bool): one candidate per face."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    neighbourhood = np.max(
        np.stack([padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]), axis=0
    )
    return heat >= neighbourhood


def batched_nms(det: Detections, iou_threshold: float) -> Detections:
    """NMS within each (frame, class) group in one pass: groups are moved apart so they cannot overlap."""
    if len(det) == 0:
        return det
    low = float(det.boxes.min())
    span = float(det.boxes.max()) - low + 1.0
    group = det.frame_index.astype(np.float32) * (ObjectClass.TEXT + 1) + det.classes
    shifted = det.boxes - low + (group * span)[:, None]
    keep = nms(shifted, det.scores, iou_threshold)
    return det.select(np.sort(keep))


def decode_centerface(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    threshold: float,
    input_scale: tuple[float, float],
    nms_iou: float = 0.3,
) -> Detections:
    """CenterFace heads ([B,1,h,w], [B,2,h,w] log-size, [B,2,h,w] centre offset) -> face boxes."""
    heat = heatmap[:, 0]
    candidates = (heat > threshold) & _local_peaks(heat)
    b, cy, cx = np.nonzero(candidates)
    size_h = np.exp(scale[b, 0, cy, cx]) * CENTERFACE_STRIDE
    size_w = np.exp(scale[b, 1, cy, cx]) * CENTERFACE_STRIDE
    centre_y = (cy + offset[b, 0, cy, cx] + 0.5) * CENTERFACE_STRIDE
    centre_x = (cx + offset[b, 1, cy, cx] + 0.5) * CENTERFACE_STRIDE
    sx, sy = input_scale
    boxes = np.stack(
        [
            (centre_x - size_w / 2) / sx,
            (centre_y - size_h / 2) / sy,
            (centre_x + size_w / 2) / sx,
            (centre_y + size_h / 2) / sy,
        ],
        axis=1,
    )
    det = Detections.build(boxes, heat[b, cy, cx], ObjectClass.FACE, b)
    return batched_nms(det, nms_iou)


@dataclass(frozen=True)
class DBParams:
    """Post-processing of a DB (differentiable binarisation) text probability map, as in PP-OCR."""

    pixel_threshold: float = 0.3  # probability for a pixel to belong to text
    box_threshold: float = 0.5  # mean probability for a region to count as text
    unclip_ratio: float = 1.6  # DB shrinks regions in training; grow them back by area * r / perimeter
    min_side: float = 3.0  # regions thinner than this (network pixels) are noise
    min_aspect: float = 0.0  # width / height below which a region is not kept (plates are wide)
    max_height_share: float = 1.0  # regions taller than this share of the frame are not kept


def label_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-connected components of a 2-D boolean mask by union-find over pixel pairs (hook + compress).

    Returns (flat indices of foreground pixels in raster order, component label of each); labels are the
    smallest flat index in the component. The rounds of hooking grow with log(component size), not with
    its diameter.
    """
    h, w = mask.shape
    flat = mask.ravel()
    fg = np.flatnonzero(flat)
    if len(fg) == 0:
        return fg, fg.copy()
    position = np.full(h * w, -1, dtype=np.int64)
    position[fg] = np.arange(len(fg))
    right = fg[(fg % w < w - 1)]
    right = right[flat[right + 1]]
    down = fg[fg < (h - 1) * w]
    down = down[flat[down + w]]
    u = np.concatenate([position[right], position[down]])
    v = np.concatenate([position[right + 1], position[down + w]])
    parent = np.arange(len(fg))
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(pu, pv)[differ], np.minimum(pu, pv)[differ])
        while True:  # path compression until every pixel points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return fg, fg[parent]


def decode_db(
    probability: np.ndarray,
    input_scale: tuple[float, float],
    params: DBParams,
    object_class: ObjectClass = ObjectClass.TEXT,
) -> Detections:
    """DB probability maps [B,1,H,W] -> axis-aligned text boxes, grown back by the unclip distance."""
    parts = []
    sx, sy = input_scale
    for frame, prob in enumerate(probability[:, 0]):
        pixels, labels = label_components(prob > params.pixel_threshold)
        if len(pixels) == 0:
            continue
        # Each component's pixels together (in their raster order), then reductions run by run: far
        # cheaper than scattered minimum.at/maximum.at updates.
        order = np.argsort(labels, kind="stable")
        pixels, labels = pixels[order], labels[order]
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        count = np.diff(np.r_[starts, len(labels)])
        ys, xs = np.divmod(pixels, prob.shape[1])
        x1 = np.minimum.reduceat(xs, starts).astype(np.float64)
        y1 = ys[starts].astype(np.float64)  # a component's first pixel in raster order is on its top row
        x2 = np.maximum.reduceat(xs, starts) + 1.0
        y2 = ys[starts + count - 1] + 1.0  # and its last on its bottom row
        comp = np.repeat(np.arange(len(starts)), count)
        score = np.bincount(comp, weights=prob.ravel()[pixels]) / count
        w, h = x2 - x1, y2 - y1
        # The unclip distance of PP-OCR (area * ratio / perimeter), on the region's bounding box.
        d = w * h * params.unclip_ratio / (2 * (w + h))
        keep = (
            (score >= params.box_threshold)
            & (np.minimum(w, h) >= params.min_side)
            & (w >= params.min_aspect * h)
            & (h + 2 * d <= params.max_height_share * prob.shape[0])  # the grown box, as masked
        )
        d = d[keep]
        boxes = np.stack(
            [(x1[keep] - d) / sx, (y1[keep] - d) / sy, (x2[keep] + d) / sx, (y2[keep] + d) / sy], axis=1
        )
        parts.append(Detections.build(boxes, score[keep], object_class, frame))
    return Detections.concat(parts)
