"""Resizing a batch of frames to a detector's input on either array backend (NumPy or CuPy).

The CPU engine resizes with FFmpeg's swscale. A GPU has no swscale, so frames that already sit in GPU
memory (DeepStream's batch, handed to Triton as CUDA memory) are resized here instead of being copied to
the host: a resize is two small matrix products, rows then columns, which cuBLAS runs at memory speed.

The weights are a triangle filter widened by the reduction factor: bilinear when enlarging, area-weighted
bilinear when reducing, as swscale's and Pillow's BILINEAR do. Results are rounded to whole grey levels,
as the uint8 frames swscale returns, so that both paths feed the detectors alike.
"""

from __future__ import annotations

from typing import Any

from .xp import array_module


def resample_weights(n_in: int, n_out: int, xp: Any) -> Any:
    """[n_out, n_in] float32: output sample i is row i's weighted sum of the input samples."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # filter half-width in input samples
    centres = (xp.arange(n_out, dtype=xp.float64) + 0.5) * scale
    samples = xp.arange(n_in, dtype=xp.float64) + 0.5
    weights = xp.clip(1.0 - xp.abs(samples[None, :] - centres[:, None]) / support, 0.0, None)
    # Near the borders part of the filter falls outside the frame: the rest is renormalised (edges clamp).
    return (weights / weights.sum(axis=1, keepdims=True)).astype(xp.float32)


def resize_to_planes(batch: Any, size: tuple[int, int]) -> Any:
    """[B,H,W,3] uint8 -> [B,3,h,w] float32 at `size` (w, h), rounded to whole grey levels."""
    xp = array_module(batch)
    count, height, width, channels = batch.shape
    out_w, out_h = size
    rows = resample_weights(height, out_h, xp)
    columns = resample_weights(width, out_w, xp)
    # Rows first on [B, H, W*3]; then channel-first [B, 3, h, W] times the columns' transpose.
    tall = xp.matmul(rows, batch.reshape(count, height, width * channels).astype(xp.float32))
    planes = xp.matmul(tall.reshape(count, out_h, width, channels).transpose(0, 3, 1, 2), columns.T)
    return xp.clip(xp.rint(planes), 0, 255)
