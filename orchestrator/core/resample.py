"""Resizing a batch of frames to a detector's input on either array backend (NumPy or CuPy).

The CPU engine resizes with FFmpeg's swscale. A GPU has no swscale, so frames that already sit in GPU
memory (DeepStream's batch, handed to Triton as CUDA memory) are resized here instead of being copied to
the host: a resize is two matrix products per frame, rows then columns, which cuBLAS runs. The weight
matrices are dense (simple, and a GPU has the arithmetic to spare: about 12 GFLOP a 1080p frame at half
size), so the CPU engine keeps swscale.

The weights are a triangle filter widened by the reduction factor: bilinear when enlarging, area-weighted
bilinear when reducing, as swscale's and Pillow's BILINEAR do. Results are rounded to whole grey levels,
as the uint8 frames swscale returns, so that both paths feed the detectors alike.
"""

from __future__ import annotations

import math
from typing import Any

from .xp import array_module


def resample_weights(n_in: int, n_out: int, xp: Any) -> Any:
    """[n_out, n_in] float32: output sample i is row i's weighted sum of the input samples."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # filter half-width in input samples
    reach = math.ceil(support) + 1  # taps beyond the frame, on either side
    centres = (xp.arange(n_out, dtype=xp.float64) + 0.5) * scale
    taps = xp.arange(-reach, n_in + reach, dtype=xp.float64) + 0.5
    weights = xp.maximum(1.0 - xp.abs(taps[None, :] - centres[:, None]) / support, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    # As swscale does, a tap beyond the frame reads the edge sample: its weight folds onto it.
    edge = xp.clip(xp.arange(-reach, n_in + reach), 0, n_in - 1)
    fold = (edge[:, None] == xp.arange(n_in)[None, :]).astype(xp.float64)
    return (weights @ fold).astype(xp.float32)


def resize_to_planes(batch: Any, size: tuple[int, int]) -> Any:
    """[B,H,W,3] uint8 -> [B,3,h,w] float32 at `size` (w, h), rounded to whole grey levels.

    Frame by frame, so that the memory beyond the result is one frame's worth, whatever the batch.
    """
    xp = array_module(batch)
    count, height, width, channels = batch.shape
    out_w, out_h = size
    rows = resample_weights(height, out_h, xp)
    columns_t = resample_weights(width, out_w, xp).T
    planes = xp.empty((count, channels, out_h, out_w), dtype=xp.float32)
    for k in range(count):
        # Rows first on [H, W*3]; then channel-first [3, h, W] times the columns' transpose.
        tall = rows @ batch[k].reshape(height, width * channels).astype(xp.float32)
        planes[k] = xp.matmul(tall.reshape(out_h, width, channels).transpose(2, 0, 1), columns_t)
    xp.rint(planes, out=planes)
    return xp.clip(planes, 0, 255, out=planes)
