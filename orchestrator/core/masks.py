"""Mask styles applied in place to HxWx3 uint8 frames (NumPy or CuPy through `xp`).

Strength is tied to the object's size, never a fixed kernel: weak pixelation and blur are reversible by
published attacks, so a masked face keeps at most a handful of blocks, or a blur wider than an eighth of it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

from .xp import array_module


class MaskStyle(str, Enum):
    BLUR = "blur"
    PIXELATE = "pixelate"
    SOLID = "solid"
    NOISE = "noise"  # random pixels: nothing of the original survives, yet it reads as "masked"


SOLID_COLOUR = (96, 96, 96)
# strength 0 -> 10 blocks across the object's short side, 1 -> 4 blocks (recognition fails below ~8)
_PIXELATE_BLOCKS = (10.0, 4.0)
# strength 0 -> 8 blur samples across the short side, 1 -> 4 (each sample spreads over two blocks)
_BLUR_SAMPLES = (8.0, 4.0)


def block_sides(style: MaskStyle, short_sides: Any, strengths: Any) -> np.ndarray:
    """Block side in pixels (at least 2) of blur or pixelate for objects of these short sides (arrays)."""
    low, high = _PIXELATE_BLOCKS if style is MaskStyle.PIXELATE else _BLUR_SAMPLES
    blocks = low + (high - low) * np.asarray(strengths, dtype=np.float64)
    return np.maximum(2, np.ceil(np.asarray(short_sides) / blocks)).astype(np.int64)


def pixelate_block(short_side: int, strength: float) -> int:
    return int(block_sides(MaskStyle.PIXELATE, short_side, strength))


def blur_block(short_side: int, strength: float) -> int:
    return int(block_sides(MaskStyle.BLUR, short_side, strength))


def _block_means(region: Any, b: int) -> Any:
    """Mean of each b x b block ([ceil(H/b), ceil(W/b), C] float32), edges replicated to fill blocks."""
    xp = array_module(region)
    h, w = region.shape[:2]
    hb, wb = -(-h // b), -(-w // b)
    padded = xp.pad(region, ((0, hb * b - h), (0, wb * b - w), (0, 0)), mode="edge")
    return padded.reshape(hb, b, wb, b, -1).mean(axis=(1, 3), dtype=xp.float32)


def _upsample_linear(small: Any, b: int, size: int, axis: int) -> Any:
    """Linear interpolation of block centres back to `size` pixels along one axis."""
    xp = array_module(small)
    n = small.shape[axis]
    pos = xp.clip((xp.arange(size, dtype=xp.float32) + 0.5) / b - 0.5, 0, n - 1)
    lo = xp.floor(pos).astype(xp.int64)
    hi = xp.minimum(lo + 1, n - 1)
    t = (pos - lo).reshape([-1 if a == axis else 1 for a in range(small.ndim)])
    return xp.take(small, lo, axis=axis) * (1 - t) + xp.take(small, hi, axis=axis) * t


def _blurred(region: Any, strength: float, object_side: int) -> Any:
    """A smooth blur as wide as a block: block means, linearly interpolated (a tent filter of 2 blocks).

    Cost is linear in the region's pixels whatever the blur width, unlike a convolution.
    """
    h, w = region.shape[:2]
    b = blur_block(object_side, strength)
    small = _block_means(region, b)
    return _upsample_linear(_upsample_linear(small, b, h, 0), b, w, 1)


def _pixelated(region: Any, strength: float, object_side: int) -> Any:
    xp = array_module(region)
    h, w = region.shape[:2]
    b = pixelate_block(object_side, strength)
    blocks = _block_means(region, b)
    return xp.repeat(xp.repeat(blocks, b, axis=0), b, axis=1)[:h, :w]


def styled(
    region: Any, style: MaskStyle, strength: float, object_side: int | None = None, rng: Any = None
) -> Any:
    """The masked version of an HxWxC region (same shape, uint8).

    `object_side` is the short side of the whole object; a face cut by the frame edge shows only part of
    itself in `region`, and its blocks must still be as coarse as the whole face needs.
    """
    xp = array_module(region)
    if style is MaskStyle.SOLID:
        return xp.broadcast_to(xp.asarray(SOLID_COLOUR, dtype=xp.uint8), region.shape)
    if style is MaskStyle.NOISE:
        gen = rng if rng is not None else xp.random.default_rng()
        return gen.integers(0, 256, size=region.shape, dtype=xp.uint8)
    side = object_side if object_side is not None else min(region.shape[:2])
    transform = _pixelated if style is MaskStyle.PIXELATE else _blurred
    out = transform(region, strength, side)
    return xp.clip(xp.rint(out), 0, 255).astype(xp.uint8)


def mask_boxes(
    frame: Any,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray | None = None,
    rng: Any = None,
) -> int:
    """Mask integer pixel boxes [N,4] (x1,y1,x2,y2) of one frame in place; returns the count masked.

    `object_sides` [N] are the objects' short sides before clipping to the frame (default: the boxes').
    Overlapping boxes are each masked from the already-masked pixels, so masking order never re-exposes
    anything. The loop is per box; each box is vectorised.
    """
    if object_sides is None:
        object_sides = np.minimum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    done = 0
    boxes = zip(bounds.tolist(), strengths.tolist(), np.asarray(object_sides).tolist(), strict=True)
    for (x1, y1, x2, y2), strength, side in boxes:
        if x2 <= x1 or y2 <= y1:
            continue
        region = frame[y1:y2, x1:x2]
        region[...] = styled(region, style, strength, max(1, int(side)), rng)
        done += 1
    return done


def mask_region(frame: Any, region_mask: Any, style: MaskStyle, strength: float) -> None:
    """Mask the pixels of a boolean HxW mask (a privacy zone) in place, styled over its bounding box."""
    xp = array_module(frame)
    region_mask = xp.asarray(region_mask)  # zones are rasterised once on the host; frames may be on a GPU
    rows = xp.flatnonzero(region_mask.any(axis=1))
    cols = xp.flatnonzero(region_mask.any(axis=0))
    if len(rows) == 0:
        return
    y1, y2, x1, x2 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    window = frame[y1:y2, x1:x2]
    inside = region_mask[y1:y2, x1:x2]
    window[inside] = styled(window, style, strength)[inside]


def polygon_mask(polygon: np.ndarray, width: int, height: int, xp: Any = np) -> Any:
    """Rasterise a polygon given in relative coordinates [P,2] (0..1) into an HxW boolean mask.

    Even-odd rule at pixel centres, one vectorised pass per edge (polygons are small; images are not).
    """
    ys = xp.arange(height, dtype=xp.float64)[:, None] + 0.5
    xs = xp.arange(width, dtype=xp.float64)[None, :] + 0.5
    pixels = np.asarray(polygon, dtype=np.float64) * [width, height]
    return inside_polygon(xs, ys, pixels, xp)


def inside_polygon(xs: Any, ys: Any, polygon: np.ndarray, xp: Any = np) -> Any:
    """Even-odd rule for points (xs, ys broadcast together) against a polygon [P,2] in the same units."""
    inside = xp.zeros(np.broadcast_shapes(xs.shape, ys.shape), dtype=bool)
    for (xa, ya), (xb, yb) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        if ya == yb:
            continue
        crosses_row = (ya > ys) != (yb > ys)
        x_at_row = xa + (ys - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses_row & (xs < x_at_row)
    return inside
