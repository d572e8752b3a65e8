"""Masks on 4:2:0 YUV frames, plane by plane, as video decoders and encoders hold them.

A plane is masked as an RGB channel would be: luma at the box, each chroma plane at half the box's
coordinates (rounded outwards, so every luma pixel's chroma sample is covered) and half the object's size.
Chroma comes as one interleaved plane (NV12: HxWx2) or as two (yuv420p: U and V, HxWx1 views each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .masks import SOLID_COLOUR, MaskStyle, mask_boxes, mask_region


def solid_yuv() -> tuple[int, int, int]:
    """SOLID_COLOUR in BT.601 limited range (a grey: the same in BT.709)."""
    r, g, b = SOLID_COLOUR
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def chroma_bounds(bounds: np.ndarray) -> np.ndarray:
    """Luma pixel boxes [N,4] -> the chroma samples that cover them (4:2:0 subsamples 2x2)."""
    out = np.asarray(bounds).astype(np.int64).reshape(-1, 4).copy()
    out[:, :2] //= 2
    out[:, 2:] = -(-out[:, 2:] // 2)
    return out


def chroma_mask(mask: np.ndarray) -> np.ndarray:
    """A luma-sized boolean mask -> the chroma samples any of whose 2x2 luma pixels it holds."""
    h, w = mask.shape
    padded = np.pad(mask, ((0, h % 2), (0, w % 2)))
    return np.asarray(padded.reshape(-(-h // 2), 2, -(-w // 2), 2).any(axis=(1, 3)))


def _solid_chroma(chroma: Sequence[Any]) -> list[tuple[int, ...]]:
    """The solid colour's (U, V), split over the chroma planes by their channels."""
    _, u, v = solid_yuv()
    values, out = [u, v], []
    for plane in chroma:
        out.append(tuple(values[: plane.shape[2]]))
        values = values[plane.shape[2] :]
    return out


def mask_yuv_boxes(
    luma: np.ndarray,
    chroma: Sequence[np.ndarray],
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> int:
    """Mask luma pixel boxes [N,4] on a luma plane (HxW) and its chroma planes in place; returns the count."""
    halves = chroma_bounds(bounds)
    if style is MaskStyle.SOLID:
        y, _, _ = solid_yuv()
        colours = _solid_chroma(chroma)
        for (x1, y1, x2, y2), (cx1, cy1, cx2, cy2) in zip(bounds.tolist(), halves.tolist(), strict=True):
            luma[y1:y2, x1:x2] = y
            for plane, colour in zip(chroma, colours, strict=True):
                plane[cy1:cy2, cx1:cx2] = colour
        return int(((bounds[:, 2] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 1])).sum())
    sides = np.maximum(1, np.asarray(object_sides).astype(np.int64))
    done = mask_boxes(luma[:, :, None], bounds, style, strengths, sides)
    for plane in chroma:
        mask_boxes(plane, halves, style, strengths, np.maximum(1, sides // 2))
    return done


def mask_yuv_region(
    luma: np.ndarray, chroma: Sequence[np.ndarray], region: np.ndarray, style: MaskStyle, strength: float
) -> None:
    """Mask the pixels of a luma-sized boolean mask (a privacy zone) on every plane, in place."""
    half = chroma_mask(region)
    if style is MaskStyle.SOLID:
        luma[region] = solid_yuv()[0]
        for plane, colour in zip(chroma, _solid_chroma(chroma), strict=True):
            plane[half] = colour
        return
    mask_region(luma[:, :, None], region, style, strength)
    for plane in chroma:
        mask_region(plane, half, style, strength)


@dataclass(eq=False)
class Yuv420Frame:
    """A frame in FFmpeg's yuv420p layout: one [H*3/2, W] array, Y rows, then U, then V (even sizes).

    Stands in for an HxWx3 RGB array in the frame step; `shape` is the RGB shape it would have.
    """

    data: np.ndarray

    def __post_init__(self) -> None:
        rows, width = self.data.shape if self.data.ndim == 2 else (0, 0)
        if self.data.dtype != np.uint8 or not self.data.flags.c_contiguous or rows % 3 or width % 2:
            # the chroma planes are reshaped views: on a copy, their masks would be lost
            raise ValueError(
                f"a yuv420p frame is one contiguous uint8 [H*3/2, W] array of even H and W, "
                f"got {self.data.dtype} {self.data.shape}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.shape[0] * 2 // 3, self.data.shape[1], 3

    @property
    def luma(self) -> np.ndarray:
        return self.data[: self.shape[0]]

    @property
    def chroma(self) -> tuple[np.ndarray, np.ndarray]:
        """U and V, each (H/2)x(W/2)x1."""
        h, w, _ = self.shape
        planes = self.data[h:].reshape(2, h // 2, w // 2, 1)  # the rows of U and V run on across lines
        return planes[0], planes[1]

    def mask_boxes(
        self, bounds: np.ndarray, style: MaskStyle, strengths: np.ndarray, object_sides: np.ndarray
    ) -> int:
        return mask_yuv_boxes(self.luma, self.chroma, bounds, style, strengths, object_sides)

    def mask_region(self, region: np.ndarray, style: MaskStyle, strength: float) -> None:
        mask_yuv_region(self.luma, self.chroma, region, style, strength)

    def fill_solid(self) -> None:
        y, u, v = solid_yuv()
        self.luma[...] = y
        self.chroma[0][...], self.chroma[1][...] = u, v


Frame = np.ndarray | Yuv420Frame  # what the frame step masks: an HxWx3 RGB array, or a yuv420p frame
