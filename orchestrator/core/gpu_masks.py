"""Every box of every frame of a batch masked on the GPU in a few kernel launches, on RGBA or NV12 surfaces.

`masks.mask_boxes` masks one box at a time; on CuPy each box then costs several kernel launches (pad,
mean, repeat, clip...), so a crowd of 300 faces over a batch means thousands of launches. Here every box
becomes one row per image plane of a table, and each row is cut into bands: as many pixel rows as the
mask's block is tall (blur, pixelate), or SOLID_BAND_ROWS (solid). One CUDA block masks one band, so a
launch is as wide as the batch's work, whatever the number of boxes or frames: solid and pixelate take
one launch (a band reads its pixels, adds up its blocks in shared memory, writes), blur two (its tent
filter also needs the block means of the bands above and below). Boxes that overlap on a plane go in
later layers, a launch (or two) each, so that the result is NumPy's, which masks box after box; most
batches have one layer. The plan (table, bands, launches) is built on the host with NumPy
(`kernel_plan`, testable anywhere) and uploaded once.

Masking is memory-bound, so the kernels read and write neighbouring pixels of a row from neighbouring
threads, RGBA pixels as whole 32-bit words, and keep per-pixel arithmetic small: each block's colour
(pixelate) and each pixel column's interpolation weights (blur) are worked out once per band.

The arithmetic follows `masks.py` step by step: block sizes from the same `block_sides`; block means are
integer sums divided in double and stored as float32 (NumPy's `mean` with dtype float32); blur blends the
block means of two block rows, then of two block columns, in double, exactly as `_upsample_linear` does
(its weights are float64); the result is rounded half to even and clipped. The kernels are compiled
without fused multiply-add so the order of operations is NumPy's, and the results are equal. The
tolerance (`PARITY_TOLERANCE`, one grey level per channel) is for blocks over about 256 px a side, whose
sums NumPy adds in float32 beyond its exact integers (2^24); the kernels add integers.

Surfaces are addressed by pointer and row pitch: DeepStream pads each row beyond width x bytes per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

import numpy as np

from .masks import SOLID_COLOUR, MaskStyle, block_sides
from .yuv import chroma_bounds, solid_yuv

PARITY_TOLERANCE = 1  # grey levels per channel, GPU kernels against the NumPy masks


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

    def __post_init__(self) -> None:
        if self.layout is Layout.NV12 and (self.width % 2 or self.height % 2):
            # The chroma plane holds whole 2x2 blocks only: a box rounded out to them would pass its edge.
            raise ValueError(f"an NV12 surface has even sizes, not {self.width}x{self.height}")

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
    "block",  # block side (blur and pixelate; 1 for solid)
    "band_rows",  # pixel rows per band (one CUDA block each): the block side, or SOLID_BAND_ROWS
    "c0",
    "c1",
    "c2",  # solid colour, per channel
    "cell_start",  # blur: first block of this row among all rows' blocks, whose means the kernels hand on
)
COL = {name: i for i, name in enumerate(COLUMNS)}
SOLID_BAND_ROWS = 8  # enough pixels per CUDA block to keep its threads busy on a small box
THREADS = 64  # most boxes are under 200 px wide: wider CUDA blocks would leave threads idle
SHARED_LIMIT = 48 * 1024  # bytes of shared memory a CUDA block may use without opting in to more


@dataclass(frozen=True)
class Kernel:
    """A kernel and the shared memory a CUDA block needs, per pixel column and per block column of its box."""

    name: str
    shared_per_pixel_column: int = 0
    shared_per_block_column: int = 0


# The kernels of each style, in launch order.
KERNELS: dict[MaskStyle, tuple[Kernel, ...]] = {
    MaskStyle.SOLID: (Kernel("solid_bands"),),
    # column sums (3 uint32), block sums (3 uint32) and each block's colour (packed bytes)
    MaskStyle.PIXELATE: (Kernel("pixelate_bands", 12, 16),),
    # column sums and block sums; then per pixel column its tent (a double and an int), one row's blend
    MaskStyle.BLUR: (Kernel("blur_means", 12, 12), Kernel("blur_bands", 12, 24)),
}
GPU_STYLES = tuple(KERNELS)  # noise stays with the per-box masks


def _surface_columns(surfaces: Sequence[Surface]) -> dict[str, np.ndarray]:
    """Per surface: size, layout and planes, as arrays a box's frame index can pick from."""

    def column(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    chroma = [s.planes[1] if s.layout is Layout.NV12 else Plane(0, 0) for s in surfaces]
    return {
        "width": column([s.width for s in surfaces]),
        "height": column([s.height for s in surfaces]),
        "nv12": np.asarray([s.layout is Layout.NV12 for s in surfaces], dtype=bool),
        "ptr": column([s.planes[0].ptr for s in surfaces]),
        "pitch": column([s.planes[0].pitch for s in surfaces]),
        "chroma_ptr": column([p.ptr for p in chroma]),
        "chroma_pitch": column([p.pitch for p in chroma]),
    }


def plane_table(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> np.ndarray:
    """The kernels' table [R, len(COLUMNS)] for boxes [N,4] (x1,y1,x2,y2) on frames `frame_index`.

    Boxes are clipped to their surface (nothing is ever written outside one); empty boxes give no row.
    NV12 gives two rows per box: luma at the box, chroma at half its coordinates and half its object size.
    """
    if style not in KERNELS:
        raise ValueError(
            f"the GPU kernels mask with {', '.join(s.value for s in GPU_STYLES)}, not {style.value}"
        )
    boxes = np.asarray(bounds, dtype=np.int64).reshape(-1, 4)
    frames = np.asarray(frame_index, dtype=np.int64)
    sides = np.maximum(1, np.asarray(object_sides).astype(np.int64))
    strength = np.asarray(strengths, dtype=np.float64)
    if not len(boxes):
        return np.zeros((0, len(COLUMNS)), dtype=np.int64)
    on = {name: values[frames] for name, values in _surface_columns(surfaces).items()}
    x1, y1 = np.maximum(boxes[:, 0], 0), np.maximum(boxes[:, 1], 0)
    x2, y2 = np.minimum(boxes[:, 2], on["width"]), np.minimum(boxes[:, 3], on["height"])
    kept = (x2 > x1) & (y2 > y1)

    def block(object_side: np.ndarray) -> np.ndarray:
        if style is MaskStyle.SOLID:
            return np.ones_like(object_side)
        return block_sides(style, object_side, strength)

    # First plane of every box (RGBA, or NV12 luma), then the chroma plane of the NV12 ones.
    clipped = np.stack([x1, y1, x2, y2], axis=1)
    nv12 = on["nv12"]
    y, u, v = solid_yuv()
    first = np.zeros((len(boxes), len(COLUMNS)), dtype=np.int64)
    first[:, [COL["ptr"], COL["pitch"]]] = np.stack([on["ptr"], on["pitch"]], axis=1)
    first[:, COL["pixel_bytes"]] = np.where(nv12, 1, 4)
    first[:, COL["channels"]] = np.where(nv12, 1, 3)
    first[:, COL["x1"] : COL["y2"] + 1] = clipped
    first[:, COL["block"]] = block(sides)
    first[:, COL["c0"] : COL["c2"] + 1] = np.where(nv12[:, None], (y, 0, 0), SOLID_COLOUR)
    second = np.zeros_like(first)
    second[:, [COL["ptr"], COL["pitch"]]] = np.stack([on["chroma_ptr"], on["chroma_pitch"]], axis=1)
    second[:, COL["pixel_bytes"]] = second[:, COL["channels"]] = 2
    second[:, COL["x1"] : COL["y2"] + 1] = chroma_bounds(clipped)
    second[:, COL["block"]] = block(np.maximum(1, sides // 2))
    second[:, COL["c0"] : COL["c2"] + 1] = (u, v, 0)
    # Box by box, luma before chroma.
    table = np.stack([first, second], axis=1)[np.stack([kept, kept & nv12], axis=1)]
    table[:, COL["band_rows"]] = SOLID_BAND_ROWS if style is MaskStyle.SOLID else table[:, COL["block"]]
    rgba = table[table[:, COL["pixel_bytes"]] == 4]
    if ((rgba[:, COL["ptr"]] | rgba[:, COL["pitch"]]) % 4).any():
        raise ValueError("RGBA surfaces must start and pitch on 4-byte boundaries (pixels are read as words)")
    return table


def _ceil_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -(-a // b)


def _height(table: np.ndarray) -> np.ndarray:
    return table[:, COL["y2"]] - table[:, COL["y1"]]


def _cells_across(table: np.ndarray) -> np.ndarray:
    """Blocks across each row's box (the last one padded by repeating the box's last column)."""
    return _ceil_div(table[:, COL["x2"]] - table[:, COL["x1"]], table[:, COL["block"]])


def _layers(table: np.ndarray) -> np.ndarray:
    """Per row: 0, or 1 + the highest layer of the earlier rows whose boxes overlap it on its plane.

    The CUDA blocks of one launch run in any order, so two boxes that overlap cannot share one: a layer is
    masked by a launch of its own and the next layer reads what it wrote, as NumPy masks box after box
    (a small box masked over part of a large one, from the large one's original pixels, would show that
    part at the small box's finer block size). Most batches have no overlap and one layer.
    """
    layer = np.zeros(len(table), dtype=np.int64)
    # Every pair of rows on one plane, earlier row first: rows sorted by plane, then each with those after it.
    order = np.lexsort((np.arange(len(table)), table[:, COL["ptr"]]))
    _, start, size = np.unique(table[order, COL["ptr"]], return_index=True, return_counts=True)
    after = np.repeat(start + size, size) - np.arange(len(table)) - 1  # rows after each on its plane
    first = np.repeat(np.arange(len(table)), after)
    second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(after) - after, after)
    x1, y1, x2, y2 = table[order][:, COL["x1"] : COL["y2"] + 1].T
    hit = (
        (x1[first] < x2[second])
        & (x1[second] < x2[first])
        & (y1[first] < y2[second])
        & (y1[second] < y2[first])
    )
    pairs = zip(order[first[hit]].tolist(), order[second[hit]].tolist(), strict=True)
    for earlier, later in sorted(pairs, key=lambda pair: pair[1]):  # earlier rows' layers are final first
        layer[later] = max(layer[later], layer[earlier] + 1)
    return layer


@dataclass(frozen=True)
class Launch:
    kernel: str
    shared_bytes: int  # per CUDA block
    first_band: int  # its CUDA blocks are the bands first_band .. first_band + bands - 1
    bands: int


@dataclass(frozen=True)
class KernelPlan:
    """What the GPU runs for one batch: the table, its bands, and the launches over them, in order."""

    table: np.ndarray  # int64 [R, len(COLUMNS)], rows of one layer together, layer after layer
    bands: np.ndarray  # int32 [B, 2]: table row, band within that row's box; one CUDA block each
    launches: tuple[Launch, ...]
    means: int  # float32 values the blur kernels hand on (3 per block)


def kernel_plan(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
    shared_limit: int = SHARED_LIMIT,
) -> KernelPlan:
    """The table, one CUDA block for every band of every row, and the style's launches, layer by layer.

    `shared_limit`: the shared memory a CUDA block may have (the device's, where launches opt in to it).
    """
    table = plane_table(surfaces, frame_index, bounds, style, strengths, object_sides)
    layers = _layers(table)
    order = np.argsort(layers, kind="stable")  # a layer's rows together, in their order
    table, layers = table[order], layers[order]
    counts = _ceil_div(_height(table), table[:, COL["band_rows"]])
    means = 0
    if style is MaskStyle.BLUR:
        cells = _cells_across(table) * counts
        table[:, COL["cell_start"]] = np.cumsum(cells) - cells
        means = 3 * int(cells.sum())
    rows = np.repeat(np.arange(len(table), dtype=np.int32), counts)
    firsts = np.repeat(np.cumsum(counts) - counts, counts)
    bands = np.stack([rows, np.arange(len(rows)) - firsts], axis=1).astype(np.int32)
    widest = int((table[:, COL["x2"]] - table[:, COL["x1"]]).max(initial=0))
    most_blocks = int(_cells_across(table).max(initial=0))
    shared = {
        k.name: widest * k.shared_per_pixel_column + most_blocks * k.shared_per_block_column
        for k in KERNELS[style]
    }
    if max(shared.values()) > shared_limit:
        raise ValueError(f"a box {widest} px wide is wider than the GPU kernels' shared memory holds")
    layer_of_band = layers[rows]
    launches = []
    for layer in range(int(layer_of_band.max(initial=-1)) + 1):
        first, last = np.searchsorted(layer_of_band, [layer, layer + 1])
        launches += [Launch(name, size, int(first), int(last - first)) for name, size in shared.items()]
    return KernelPlan(table, bands, tuple(launches), means)


# One CUDA block per band. A thread adds up whole pixel columns of the band, then a block's columns are
# added up, then every thread writes its pixel columns row by row: at each step neighbouring threads touch
# neighbouring pixels of a row. Index arithmetic is 32-bit: 64-bit division is many times slower on a GPU.
_KERNELS = r"""
#define COLS 14
#define PTR 0
#define PITCH 1
#define PIXEL_BYTES 2
#define CHANNELS 3
#define X1 4
#define Y1 5
#define X2 6
#define Y2 7
#define BLOCK 8
#define BAND_ROWS 9
#define C0 10
#define CELL_START 13

// Loops over a plane's 1 to 3 channels with a fixed bound, so small per-channel arrays stay in registers.
#define UNROLLED_CHANNELS(d) _Pragma("unroll") for (int c = 0; c < 3; ++c) if (c < (d).channels)

#ifndef SHARED_BUFFER
#define SHARED_BUFFER(name) extern __shared__ __align__(8) unsigned char name[]
#endif

struct Band {
    unsigned char* plane;
    long long pitch;
    int pixel_bytes, channels, x1, y1, w, h, b;
    int y0, rows;  // the band: its first pixel row in the box, and how many of its rows the box has
    int wb, hb;    // blocks across and down the box
    long long cell_start;
    unsigned int colour;  // solid colour, packed as the pixel's bytes
};

__device__ Band band_of(const long long* table, const int* bands) {
    const int* item = bands + 2 * blockIdx.x;
    const long long* t = table + (long long)item[0] * COLS;
    Band d;
    d.plane = (unsigned char*)t[PTR];
    d.pitch = t[PITCH];
    d.pixel_bytes = (int)t[PIXEL_BYTES];
    d.channels = (int)t[CHANNELS];
    d.x1 = (int)t[X1];
    d.y1 = (int)t[Y1];
    d.w = (int)t[X2] - d.x1;
    d.h = (int)t[Y2] - d.y1;
    d.b = (int)t[BLOCK];
    d.y0 = item[1] * (int)t[BAND_ROWS];
    d.rows = min((int)t[BAND_ROWS], d.h - d.y0);
    d.wb = (d.w + d.b - 1) / d.b;
    d.hb = (d.h + d.b - 1) / d.b;
    d.cell_start = t[CELL_START];
    d.colour = (unsigned int)t[C0] | (unsigned int)t[C0 + 1] << 8 | (unsigned int)t[C0 + 2] << 16;
    return d;
}

__device__ unsigned char* pixel(const Band& d, int x, int y) {
    return d.plane + (long long)(d.y1 + y) * d.pitch + (d.x1 + x) * d.pixel_bytes;
}

// An RGBA pixel is read and written as one 32-bit word, alpha written back as it was: a warp's stores
// then fill whole memory sectors. Luma and chroma pixels are 1 and 2 bytes.
__device__ void load(const unsigned char* p, int pixel_bytes, unsigned int v[3]) {
    if (pixel_bytes == 4) {
        unsigned int word = *(const unsigned int*)p;
        v[0] = word & 0xFF;
        v[1] = (word >> 8) & 0xFF;
        v[2] = (word >> 16) & 0xFF;
    } else {
        v[0] = p[0];
        if (pixel_bytes == 2) v[1] = p[1];
    }
}

__device__ void store(unsigned char* p, int pixel_bytes, unsigned int packed) {
    if (pixel_bytes == 4) {
        unsigned int* word = (unsigned int*)p;
        *word = (*word & 0xFF000000u) | packed;
    } else {
        p[0] = packed & 0xFF;
        if (pixel_bytes == 2) p[1] = (packed >> 8) & 0xFF;
    }
}

__device__ unsigned int pack(const unsigned int v[3]) {
    return v[0] | v[1] << 8 | v[2] << 16;
}

// Rounded half to even and clipped, as NumPy's rint and clip.
__device__ unsigned int to_byte(double value) {
    return (unsigned int)min(max(__double2int_rn(value), 0), 255);
}

// The band's block sums, 3 per block, through per-column sums (3 per pixel column, scratch). Rows and
// columns past the box repeat its last row and column, as NumPy's edge padding does.
__device__ void band_sums(const Band& d, unsigned int* columns, unsigned int* sums) {
    for (int x = threadIdx.x; x < d.w; x += blockDim.x) {
        unsigned int s[3] = {0, 0, 0}, v[3];
        for (int dy = 0; dy < d.b; ++dy) {
            load(pixel(d, x, min(d.y0 + dy, d.h - 1)), d.pixel_bytes, v);
            UNROLLED_CHANNELS(d) s[c] += v[c];
        }
        UNROLLED_CHANNELS(d) columns[x * 3 + c] = s[c];
    }
    __syncthreads();
    for (int cell = threadIdx.x; cell < d.wb; cell += blockDim.x) {
        int first = cell * d.b, end = min(first + d.b, d.w);
        unsigned int s[3] = {0, 0, 0}, copies = first + d.b - end;
        for (int x = first; x < end; ++x) {
            UNROLLED_CHANNELS(d) s[c] += columns[x * 3 + c];
        }
        UNROLLED_CHANNELS(d) sums[cell * 3 + c] = s[c] + copies * columns[(end - 1) * 3 + c];
    }
    __syncthreads();
}

__device__ float block_mean(unsigned int sum, int b) {
    return (float)((double)sum / (double)(b * b));  // NumPy's mean with dtype float32
}

extern "C" __global__ void solid_bands(const long long* table, const int* bands, float* means) {
    Band d = band_of(table, bands);
    for (int x = threadIdx.x; x < d.w; x += blockDim.x) {
        for (int dy = 0; dy < d.rows; ++dy) store(pixel(d, x, d.y0 + dy), d.pixel_bytes, d.colour);
    }
}

extern "C" __global__ void pixelate_bands(const long long* table, const int* bands, float* means) {
    SHARED_BUFFER(shared);
    Band d = band_of(table, bands);
    unsigned int* columns = (unsigned int*)shared;
    unsigned int* sums = columns + d.w * 3;
    unsigned int* colour = sums + d.wb * 3;  // each block's mean, packed as the pixel's bytes
    band_sums(d, columns, sums);
    for (int cell = threadIdx.x; cell < d.wb; cell += blockDim.x) {
        unsigned int v[3] = {0, 0, 0};
        UNROLLED_CHANNELS(d) v[c] = to_byte(block_mean(sums[cell * 3 + c], d.b));
        colour[cell] = pack(v);
    }
    __syncthreads();
    for (int x = threadIdx.x; x < d.w; x += blockDim.x) {
        unsigned int packed = colour[x / d.b];
        for (int dy = 0; dy < d.rows; ++dy) store(pixel(d, x, d.y0 + dy), d.pixel_bytes, packed);
    }
}

// Blur, pass 1: the means of the band's blocks, for pass 2 to blend with the bands above and below.
extern "C" __global__ void blur_means(const long long* table, const int* bands, float* means) {
    SHARED_BUFFER(shared);
    Band d = band_of(table, bands);
    unsigned int* columns = (unsigned int*)shared;
    unsigned int* sums = columns + d.w * 3;
    band_sums(d, columns, sums);
    float* out = means + (d.cell_start + (long long)(d.y0 / d.b) * d.wb) * 3;
    for (int i = threadIdx.x; i < d.wb * 3; i += blockDim.x) {  // 3 per block; unused channels 0
        out[i] = i % 3 < d.channels ? block_mean(sums[i], d.b) : 0.0f;
    }
}

// masks.py's _upsample_linear: block-centre position in float32, weights and blend in double.
__device__ void tent(int i, int b, int n, int* lo, int* hi, double* t) {
    float pos = ((float)i + 0.5f) / (float)b - 0.5f;
    pos = fminf(fmaxf(pos, 0.0f), (float)(n - 1));
    *lo = (int)floorf(pos);
    *hi = min(*lo + 1, n - 1);
    *t = (double)pos - (double)*lo;
}

// Blur, pass 2: per pixel row of the band, the blend of two block rows (shared by the whole row), then
// per pixel the blend of two block columns of it, as NumPy interpolates rows first, then columns. Each
// pixel column's tent is worked out once for the band.
extern "C" __global__ void blur_bands(const long long* table, const int* bands, float* means) {
    SHARED_BUFFER(shared);
    Band d = band_of(table, bands);
    double* weight = (double*)shared;  // per pixel column: the weight of its right-hand block
    double* row = weight + d.w;        // one pixel row's blend of two block rows, 3 per block
    int* left = (int*)(row + d.wb * 3);  // per pixel column: its left-hand block
    for (int x = threadIdx.x; x < d.w; x += blockDim.x) {
        int hi;
        tent(x, d.b, d.wb, &left[x], &hi, &weight[x]);
    }
    const float* m = means + d.cell_start * 3;
    for (int dy = 0; dy < d.rows; ++dy) {
        int ylo, yhi;
        double ty;
        tent(d.y0 + dy, d.b, d.hb, &ylo, &yhi, &ty);
        for (int i = threadIdx.x; i < d.wb * 3; i += blockDim.x) {
            row[i] = (double)m[ylo * d.wb * 3 + i] * (1.0 - ty) + (double)m[yhi * d.wb * 3 + i] * ty;
        }
        __syncthreads();  // the row's blend, and on the first row the tents, are complete
        for (int x = threadIdx.x; x < d.w; x += blockDim.x) {
            int lo = left[x], hi = min(lo + 1, d.wb - 1);
            double tx = weight[x];
            unsigned int v[3] = {0, 0, 0};
            UNROLLED_CHANNELS(d) v[c] = to_byte(row[lo * 3 + c] * (1.0 - tx) + row[hi * 3 + c] * tx);
            store(pixel(d, x, d.y0 + dy), d.pixel_bytes, pack(v));
        }
        __syncthreads();  // the next pixel row overwrites the blend
    }
}
"""


@cache
def _module() -> Any:
    import cupy

    # No fused multiply-add: the blends must round like NumPy's separate multiply and add.
    return cupy.RawModule(code=_KERNELS, options=("--fmad=false",))


@dataclass(frozen=True)
class DeviceWork:
    """A batch's plan with its table and bands uploaded to the device."""

    plan: KernelPlan
    table: Any  # cupy arrays
    bands: Any


def device_work(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> DeviceWork | None:
    """The plan, built on the host and uploaded once; None when there is nothing to mask."""
    import cupy

    limit = cupy.cuda.Device().attributes["MaxSharedMemoryPerBlockOptin"]
    plan = kernel_plan(surfaces, frame_index, bounds, style, strengths, object_sides, limit)
    if not len(plan.bands):
        return None
    return DeviceWork(plan, cupy.asarray(plan.table), cupy.asarray(plan.bands))


def launch(work: DeviceWork) -> None:
    """The plan's launches in order, one CUDA block per band."""
    import cupy

    module = _module()
    means = cupy.empty(max(work.plan.means, 1), dtype=cupy.float32)
    for step in work.plan.launches:
        bands = work.bands[step.first_band : step.first_band + step.bands]
        kernel = module.get_function(step.kernel)
        if step.shared_bytes > SHARED_LIMIT:  # a box over about 2000 px wide: opt in to the device's more
            kernel.max_dynamic_shared_size_bytes = step.shared_bytes
        kernel((step.bands,), (THREADS,), (work.table, bands, means), shared_mem=step.shared_bytes)


def mask_surfaces(
    surfaces: Sequence[Surface],
    frame_index: np.ndarray,
    bounds: np.ndarray,
    style: MaskStyle,
    strengths: np.ndarray,
    object_sides: np.ndarray,
) -> int:
    """Mask boxes [N,4] on GPU surfaces in place, a launch or two per layer; returns the rows (planes)
    masked.

    Runs on CuPy's current stream; the caller synchronises before the buffer moves on.
    """
    work = device_work(surfaces, frame_index, bounds, style, strengths, object_sides)
    if work is None:
        return 0
    launch(work)
    return len(work.plan.table)
