"""Every box of every frame of a batch masked on the GPU in two kernel launches, on RGBA or NV12 surfaces.

`masks.mask_boxes` masks one box at a time; on CuPy each box then costs several kernel launches (pad,
mean, repeat, clip...), so a crowd of 300 faces over a batch means thousands of launches. Here every box
becomes one row per image plane of a table (`plane_table`, plain NumPy, testable anywhere), and two kernels
walk the table: one adds up every block row by row, one writes every masked pixel. Launches stay at two per
style, whatever the number of boxes or frames.

The arithmetic follows `masks.py` step by step: block sizes come from the same `blur_block` and
`pixelate_block`; block means are integer sums divided in double and stored as float32 (NumPy's `mean`
with dtype float32); blur interpolates block centres in double exactly as `_upsample_linear` does (its
weights are float64); the result is rounded half to even and clipped. The kernels are compiled without
fused multiply-add so the order of operations is NumPy's. Tolerance against the NumPy backend: one grey
level per channel (`PARITY_TOLERANCE`), which covers the last-bit differences a GPU's division may make.

Surfaces are addressed by pointer and row pitch: DeepStream pads each row beyond width x bytes per pixel.
Boxes of one frame that overlap are each masked from the original pixels, and the overlap gets the value of
one of them (both are masks of the same strength; no pixel there keeps its original value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from .masks import SOLID_COLOUR, MaskStyle, blur_block, mask_boxes, pixelate_block

PARITY_TOLERANCE = 1  # grey levels per channel, GPU kernels against the NumPy masks
GPU_STYLES = (MaskStyle.BLUR, MaskStyle.PIXELATE, MaskStyle.SOLID)  # noise stays with the per-box masks


class Layout(str, Enum):
    RGBA = "RGBA"  # one plane, 4 bytes a pixel; alpha is left as it is
    NV12 = "NV12"  # a luma plane, then a half-size plane of interleaved U and V


@dataclass(frozen=True)
class Plane:
    ptr: int  # device address of the plane's first row
    pitch: int  # bytes from one row to the next (at least width x bytes per pixel)


@dataclass(frozen=True)
class Surface:
    """One frame of a batch as the GPU holds it."""

    layout: Layout
    width: int
    height: int
    planes: tuple[Plane, ...]  # RGBA: one; NV12: luma, chroma

    @classmethod
    def rgba(cls, array: Any) -> Surface:
        """A mapped HxWx4 uint8 array (CuPy, rows possibly padded: strides[0] is the pitch)."""
        height, width, channels = array.shape
        if channels != 4 or array.strides[1:] != (4, 1):
            raise ValueError(
                f"an RGBA surface is HxWx4 with packed pixels, got {array.shape} {array.strides}"
            )
        return cls(Layout.RGBA, width, height, (Plane(_address(array), array.strides[0]),))


def _address(array: Any) -> int:
    """Device address of a CuPy array, host address of a NumPy one (the table is the same for both)."""
    data = array.data
    return int(data.ptr) if hasattr(data, "ptr") else int(array.ctypes.data)


# Columns of the plane table (int64). One row per box and plane; the kernels read nothing else (their
# #defines repeat these positions; a test holds the two together).
COLUMNS = (
    "ptr",  # device address of the plane
    "pitch",
    "pixel_bytes",  # 4 RGBA, 1 luma, 2 chroma
    "channels",  # channels masked: 3 RGBA (alpha kept), 1 luma, 2 chroma
    "x1",
    "y1",
    "x2",
    "y2",  # the box in the plane's pixels
    "block",  # block side (blur and pixelate)
    "style",  # index in STYLE_CODES
    "c0",
    "c1",
    "c2",  # solid colour, per channel
    "cell_start",  # first block of this row among all rows' blocks (prefix sum: the kernels' index)
    "pixel_start",  # first pixel of this row among all rows' pixels
    "cell_row_start",  # first block row (a block's row of pixels) of this row among all rows' block rows
)
COL = {name: i for i, name in enumerate(COLUMNS)}
STYLE_CODES = {MaskStyle.SOLID: 0, MaskStyle.PIXELATE: 1, MaskStyle.BLUR: 2}


def solid_yuv() -> tuple[int, int, int]:
    """SOLID_COLOUR in BT.601 limited range, as NV12 stores it."""
    r, g, b = SOLID_COLOUR
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def chroma_bounds(bounds: np.ndarray) -> np.ndarray:
    """Luma pixel boxes [N,4] -> the chroma samples that cover them (NV12 subsamples 2x2)."""
    out = bounds.astype(np.int64).copy()
    out[:, :2] //= 2
    out[:, 2:] = -(-out[:, 2:] // 2)
    return out


def _block(style: MaskStyle, side: int, strength: float) -> int:
    if style is MaskStyle.SOLID:
        return 1
    return (pixelate_block if style is MaskStyle.PIXELATE else blur_block)(side, strength)


def plane_table(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> np.ndarray:
    """The kernels' work list [R, len(COLUMNS)] for boxes [N,4] (x1,y1,x2,y2) on frames `frame_index`.

    Boxes are clipped to their surface (nothing is ever written outside one); empty boxes give no row.
    NV12 gives two rows per box: luma at the box, chroma at half its coordinates and half its object size.
    """
    if style not in STYLE_CODES:
        raise ValueError(
            f"the GPU kernels mask with {', '.join(s.value for s in GPU_STYLES)}, not {style.value}"
        )
    rows: list[list[int]] = []
    code = STYLE_CODES[style]
    y, u, v = solid_yuv()
    for k, box, strength, side in zip(
        np.asarray(frame_index).tolist(),
        np.asarray(bounds, dtype=np.int64).tolist(),
        np.asarray(strengths, dtype=np.float64).tolist(),
        np.asarray(object_sides).tolist(),
        strict=True,
    ):
        surface = surfaces[k]
        x1, y1 = max(box[0], 0), max(box[1], 0)
        x2, y2 = min(box[2], surface.width), min(box[3], surface.height)
        if x2 <= x1 or y2 <= y1:
            continue
        side = max(1, int(side))
        if surface.layout is Layout.RGBA:
            rgba = surface.planes[0]
            block = _block(style, side, strength)
            rows.append([rgba.ptr, rgba.pitch, 4, 3, x1, y1, x2, y2, block, code, *SOLID_COLOUR])
            continue
        luma, chroma = surface.planes
        cx1, cy1, cx2, cy2 = chroma_bounds(np.array([[x1, y1, x2, y2]]))[0].tolist()
        block, chroma_block = _block(style, side, strength), _block(style, max(1, side // 2), strength)
        rows.append([luma.ptr, luma.pitch, 1, 1, x1, y1, x2, y2, block, code, y, 0, 0])
        rows.append([chroma.ptr, chroma.pitch, 2, 2, cx1, cy1, cx2, cy2, chroma_block, code, u, v, 0])
    table = np.zeros((len(rows), len(COLUMNS)), dtype=np.int64)
    if not rows:
        return table
    table[:, : COL["cell_start"]] = rows
    w = table[:, COL["x2"]] - table[:, COL["x1"]]
    h = table[:, COL["y2"]] - table[:, COL["y1"]]
    blocks = table[:, COL["block"]]
    cells = np.zeros_like(w) if style is MaskStyle.SOLID else -(-w // blocks) * -(-h // blocks)
    table[:, COL["cell_start"]] = np.cumsum(cells) - cells
    table[:, COL["pixel_start"]] = np.cumsum(w * h) - w * h
    table[:, COL["cell_row_start"]] = np.cumsum(cells * blocks) - cells * blocks
    return table


class Totals(NamedTuple):
    cells: int  # blocks: sums kept
    cell_rows: int  # a block's rows of pixels: the first kernel's threads
    pixels: int  # masked pixels: the second kernel's threads


def table_totals(table: np.ndarray) -> Totals:
    """What the work list adds up to: the sizes of the two kernels' grids and of the block sums."""
    if not len(table):
        return Totals(0, 0, 0)
    last = table[-1]
    w, h, block = last[COL["x2"]] - last[COL["x1"]], last[COL["y2"]] - last[COL["y1"]], last[COL["block"]]
    solid = last[COL["style"]] == STYLE_CODES[MaskStyle.SOLID]
    cells = 0 if solid else math.ceil(w / block) * math.ceil(h / block)
    return Totals(
        int(last[COL["cell_start"]] + cells),
        int(last[COL["cell_row_start"]] + cells * block),
        int(last[COL["pixel_start"]] + w * h),
    )


def mask_nv12_boxes(
    luma: np.ndarray,
    chroma: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> int:
    """NV12 masks with the NumPy backend (the GPU kernels' reference): luma HxW, chroma (H/2)x(W/2)x2.

    Each plane is masked by `mask_boxes` on its own coordinates; solid paints SOLID_COLOUR's Y, U and V.
    """
    if style is MaskStyle.SOLID:
        y, u, v = solid_yuv()
        halves = chroma_bounds(bounds).tolist()
        for (x1, y1, x2, y2), (cx1, cy1, cx2, cy2) in zip(bounds.tolist(), halves, strict=True):
            luma[y1:y2, x1:x2] = y
            chroma[cy1:cy2, cx1:cx2] = (u, v)
        return int(((bounds[:, 2] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 1])).sum())
    sides = np.maximum(1, np.asarray(object_sides).astype(np.int64))
    done = mask_boxes(luma[:, :, None], bounds, style, strengths, sides)
    mask_boxes(chroma, chroma_bounds(bounds), style, strengths, np.maximum(1, sides // 2))
    return done


# Pass 1: one thread per row of pixels of a block, adding it into the block's integer sums (atomically:
# integer sums do not depend on the order). Pass 2: one thread per masked pixel; a block's mean is its sum
# divided in double, as NumPy's mean. A thread finds its table row by binary search over the prefix sums,
# so rows of any size share one launch. Index arithmetic is 32-bit (a batch has fewer than 2^31 pixels):
# 64-bit division is many times slower on a GPU.
_KERNELS = r"""
#define COLS 16
#define PTR 0
#define PITCH 1
#define PIXEL_BYTES 2
#define CHANNELS 3
#define X1 4
#define Y1 5
#define X2 6
#define Y2 7
#define BLOCK 8
#define STYLE 9
#define C0 10
#define CELL_START 13
#define PIXEL_START 14
#define CELL_ROW_START 15

__device__ int find_row(const long long* table, int rows, long long g, int column) {
    int lo = 0, hi = rows - 1;  // the last row whose start is <= g (rows without work share a start)
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (table[mid * COLS + column] <= g) lo = mid; else hi = mid - 1;
    }
    return lo;
}

extern "C" __global__ void block_sums(const long long* table, int rows, long long cell_rows,
                                      unsigned int* sums) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= cell_rows) return;
    const long long* t = table + find_row(table, rows, g, CELL_ROW_START) * COLS;
    int b = (int)t[BLOCK], x1 = (int)t[X1], y1 = (int)t[Y1], x2 = (int)t[X2], y2 = (int)t[Y2];
    int local = (int)(g - t[CELL_ROW_START]);
    int cell = local / b, dy = local - cell * b;
    int wb = (x2 - x1 + b - 1) / b;
    int cy = cell / wb;
    int bx = x1 + (cell - cy * wb) * b, y = min(y1 + cy * b + dy, y2 - 1);  // edge rows replicated
    const unsigned char* row = (const unsigned char*)t[PTR] + (long long)y * t[PITCH];
    int channels = (int)t[CHANNELS], pixel_bytes = (int)t[PIXEL_BYTES];
    unsigned int s[3] = {0, 0, 0};
    for (int dx = 0; dx < b; ++dx) {
        const unsigned char* p = row + min(bx + dx, x2 - 1) * pixel_bytes;  // edge columns replicated
        for (int c = 0; c < channels; ++c) s[c] += p[c];
    }
    unsigned int* out = sums + (t[CELL_START] + cell) * 3;
    for (int c = 0; c < channels; ++c) atomicAdd(out + c, s[c]);
}

__device__ double block_mean(const unsigned int* s, int b) {
    return (double)(float)((double)*s / (double)(b * b));  // stored as float32 by NumPy's mean
}

// masks.py's _upsample_linear: block-centre position in float32, weights and blend in double.
__device__ void tent(int i, int b, int n, int* lo, int* hi, double* t) {
    float pos = ((float)i + 0.5f) / (float)b - 0.5f;
    pos = fminf(fmaxf(pos, 0.0f), (float)(n - 1));
    *lo = (int)floorf(pos);
    *hi = min(*lo + 1, n - 1);
    *t = (double)pos - (double)*lo;
}

extern "C" __global__ void write_pixels(const long long* table, int rows, long long pixels,
                                        const unsigned int* sums) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= pixels) return;
    const long long* t = table + find_row(table, rows, g, PIXEL_START) * COLS;
    int k = (int)(g - t[PIXEL_START]);
    int x1 = (int)t[X1], y1 = (int)t[Y1], w = (int)t[X2] - x1, h = (int)t[Y2] - y1, b = (int)t[BLOCK];
    int py = k / w, px = k - py * w;
    int pixel_bytes = (int)t[PIXEL_BYTES];
    unsigned char* p = (unsigned char*)t[PTR] + (long long)(y1 + py) * t[PITCH] + (x1 + px) * pixel_bytes;
    int channels = (int)t[CHANNELS], style = (int)t[STYLE];
    int wb = (w + b - 1) / b, hb = (h + b - 1) / b;
    const unsigned int* m = sums + t[CELL_START] * 3;
    for (int c = 0; c < channels; ++c) {
        double value;
        if (style == 0) {
            value = (double)t[C0 + c];
        } else if (style == 1) {
            value = block_mean(m + ((py / b) * wb + px / b) * 3 + c, b);
        } else {
            int ylo, yhi, xlo, xhi;
            double ty, tx;
            tent(py, b, hb, &ylo, &yhi, &ty);
            tent(px, b, wb, &xlo, &xhi, &tx);
            // Rows first, then columns, as NumPy does: the blend at each of the two columns...
            double left = block_mean(m + (ylo * wb + xlo) * 3 + c, b) * (1.0 - ty)
                          + block_mean(m + (yhi * wb + xlo) * 3 + c, b) * ty;
            double right = block_mean(m + (ylo * wb + xhi) * 3 + c, b) * (1.0 - ty)
                           + block_mean(m + (yhi * wb + xhi) * 3 + c, b) * ty;
            // ...then between them.
            value = left * (1.0 - tx) + right * tx;
        }
        p[c] = (unsigned char)fmin(fmax(rint(value), 0.0), 255.0);  // alpha (RGBA) is never written
    }
}
"""
THREADS = 256


@cache
def _module() -> Any:
    import cupy

    # No fused multiply-add: the blends must round like NumPy's separate multiply and add.
    return cupy.RawModule(code=_KERNELS, options=("--fmad=false",))


@dataclass(frozen=True)
class DeviceWork:
    """A batch's work list on the device, with what it adds up to."""

    table: Any  # cupy array [R, len(COLUMNS)]
    rows: int
    totals: Totals


def device_work(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> DeviceWork | None:
    """The work list, built on the host (a few hundred rows) and uploaded once; None when nothing to do."""
    import cupy

    table = plane_table(surfaces, frame_index, bounds, style, strengths, object_sides)
    totals = table_totals(table)
    if totals.pixels == 0:
        return None
    if totals.pixels >= 2**31:
        raise ValueError("a batch to mask has 2^31 pixels or more: the kernels index in 32 bits")
    return DeviceWork(cupy.asarray(table), len(table), totals)


def launch(work: DeviceWork) -> None:
    """The two kernels over a work list: block sums (blur, pixelate), then every pixel of every box."""
    import cupy

    module = _module()
    totals = work.totals
    sums = cupy.zeros(max(totals.cells, 1) * 3, dtype=cupy.uint32)
    rows = np.int32(work.rows)
    if totals.cell_rows:
        grid = (-(-totals.cell_rows // THREADS),)
        module.get_function("block_sums")(
            grid, (THREADS,), (work.table, rows, np.int64(totals.cell_rows), sums)
        )
    grid = (-(-totals.pixels // THREADS),)
    module.get_function("write_pixels")(grid, (THREADS,), (work.table, rows, np.int64(totals.pixels), sums))


def mask_surfaces(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> int:
    """Mask boxes [N,4] on GPU surfaces in place, in two kernel launches; returns the rows (planes) masked.

    Runs on CuPy's current stream; the caller synchronises before the buffer moves on.
    """
    work = device_work(surfaces, frame_index, bounds, style, strengths, object_sides)
    if work is None:
        return 0
    launch(work)
    return work.rows
