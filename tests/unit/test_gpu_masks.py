"""The batched GPU mask kernels against the NumPy masks, on padded RGBA and NV12 surfaces.

On a GPU the kernels run through CuPy; everywhere the same CUDA source also runs compiled for the host
(`host_kernels.py`), so their arithmetic is checked on every machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from backends import cupy_param

from orchestrator.core import gpu_masks
from orchestrator.core.gpu_masks import (
    COL,
    GPU_STYLES,
    PARITY_TOLERANCE,
    SHARED_LIMIT,
    SOLID_BAND_ROWS,
    Layout,
    Plane,
    Surface,
    kernel_plan,
    plane_table,
)
from orchestrator.core.masks import MaskStyle, blur_block, mask_boxes, pixelate_block
from orchestrator.core.yuv import mask_yuv_boxes, solid_yuv

STYLES = pytest.mark.parametrize("style", GPU_STYLES, ids=lambda s: s.value)
PAD = 48  # bytes of row padding, as DeepStream's pitch adds
MaskFn = Callable[[list[Surface], np.ndarray, np.ndarray, MaskStyle, np.ndarray, np.ndarray], object]


def _gpu_mask(surfaces, frame_index, bounds, style, strengths, sides):  # type: ignore[no-untyped-def]
    gpu_masks.mask_surfaces(surfaces, frame_index, bounds, style, strengths, sides)
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


ENGINES = pytest.mark.parametrize("engine", [pytest.param("host", id="host-g++"), cupy_param("cupy")])


@pytest.fixture
def run_kernels(engine: str, request: pytest.FixtureRequest) -> tuple[MaskFn, object]:
    """The kernel runner and the array module its surfaces live in."""
    if engine == "host":
        return request.getfixturevalue("host_kernels"), np
    import cupy

    return _gpu_mask, cupy


def padded_rgba(xp: object, frames: int, h: int, w: int, seed: int = 0) -> tuple[list[object], list[object]]:
    """Random RGBA frames whose rows are PAD bytes longer than the pixels (the buffers, and HxWx4 views)."""
    rng = np.random.default_rng(seed)
    buffers = [xp.asarray(rng.integers(0, 256, size=(h, w * 4 + PAD), dtype=np.uint8)) for _ in range(frames)]  # type: ignore[attr-defined]
    return buffers, [b[:, : w * 4].reshape(h, w, 4) for b in buffers]


def to_host(array: object) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array).copy()  # type: ignore[attr-defined]


def boxes_batch(
    frames: int, h: int, w: int, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping boxes of varied sizes on every frame, some cut by the frame edge."""
    rng = np.random.default_rng(seed)
    index, bounds = [], []
    for k in range(frames):
        for x in range(0, w, w // 4):
            y = int(rng.integers(-10, h - 20))
            bw, bh = int(rng.integers(8, w // 4)), int(rng.integers(8, 60))
            index.append(k)
            bounds.append((x, y, x + bw, y + bh))
    bounds_arr = np.clip(np.asarray(bounds, dtype=np.int64), 0, [w, h, w, h])
    strengths = rng.uniform(0, 1, len(bounds)).astype(np.float32)
    sides = np.minimum(bounds_arr[:, 2] - bounds_arr[:, 0], bounds_arr[:, 3] - bounds_arr[:, 1]) * 1.3
    return np.asarray(index), bounds_arr, strengths, sides


@ENGINES
@STYLES
def test_rgba_batch_equals_numpy_masks_and_leaves_alpha_and_padding(
    run_kernels: tuple[MaskFn, object], style: MaskStyle
) -> None:
    mask, xp = run_kernels
    h, w, frames = 90, 160, 3
    buffers, views = padded_rgba(xp, frames, h, w)
    before = [to_host(b) for b in buffers]
    index, bounds, strengths, sides = boxes_batch(frames, h, w)

    mask([Surface.rgba(v) for v in views], index, bounds, style, strengths, sides)

    for k in range(frames):
        expected = before[k][:, : w * 4].reshape(h, w, 4).copy()
        mine = index == k
        mask_boxes(expected[:, :, :3], bounds[mine], style, strengths[mine], sides[mine])
        after = to_host(buffers[k])
        got = after[:, : w * 4].reshape(h, w, 4)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= PARITY_TOLERANCE
        np.testing.assert_array_equal(got[:, :, 3], before[k][:, : w * 4].reshape(h, w, 4)[:, :, 3])
        np.testing.assert_array_equal(after[:, w * 4 :], before[k][:, w * 4 :])  # row padding untouched


@ENGINES
@STYLES
@pytest.mark.parametrize("overlapping", [False, True], ids=["apart", "overlapping"])
def test_nv12_batch_equals_numpy_nv12_masks(
    run_kernels: tuple[MaskFn, object], style: MaskStyle, overlapping: bool
) -> None:
    mask, xp = run_kernels
    h, w, frames = 64, 96, 2
    rng = np.random.default_rng(5)
    # One buffer per frame: luma rows, then chroma rows, all PAD bytes longer than the pixels.
    buffers = [
        xp.asarray(rng.integers(0, 256, size=(h + h // 2, w + PAD), dtype=np.uint8)) for _ in range(frames)
    ]  # type: ignore[attr-defined]
    before = [to_host(b) for b in buffers]
    pitch = w + PAD
    surfaces = [
        Surface(
            Layout.NV12,
            w,
            h,
            (Plane(gpu_masks._address(b), pitch), Plane(gpu_masks._address(b) + h * pitch, pitch)),
        )
        for b in buffers
    ]
    index, bounds, strengths, sides = boxes_batch(frames, h, w, seed=7)
    if overlapping:  # shifted copies: luma boxes overlap, and chroma boxes that only touch in luma
        index = np.concatenate([index, index])
        bounds = np.concatenate([bounds, np.clip(bounds + np.array([3, 5, 9, 1]), 0, [w, h, w, h])])
        strengths, sides = np.concatenate([strengths, 1 - strengths]), np.concatenate([sides, sides / 2])

    mask(surfaces, index, bounds, style, strengths, sides)

    for k in range(frames):
        expected = before[k].copy()
        luma, chroma = expected[:h, :w], expected[h:, :w].reshape(h // 2, w // 2, 2)
        mine = index == k
        mask_yuv_boxes(luma, [chroma], bounds[mine], style, strengths[mine], sides[mine])
        got = to_host(buffers[k])
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= PARITY_TOLERANCE
        np.testing.assert_array_equal(got[:, w:], before[k][:, w:])


@ENGINES
@STYLES
def test_overlapping_boxes_are_masked_one_after_another_as_numpy_does(
    run_kernels: tuple[MaskFn, object], style: MaskStyle
) -> None:
    """A small box over part of a large one is masked from the large one's mask, never from the original
    pixels: read from those, the overlap would show at the small box's finer block size."""
    mask, xp = run_kernels
    _, views = padded_rgba(xp, 1, 60, 80)
    expected = to_host(views[0])
    bounds = np.array([[5, 5, 45, 45], [20, 20, 70, 50], [30, 8, 40, 30], [60, 0, 80, 10]])
    strengths, sides = np.array([1.0, 0.2, 0.0, 0.5]), np.array([40, 30, 10, 10])

    mask([Surface.rgba(views[0])], np.zeros(4, int), bounds, style, strengths, sides)

    mask_boxes(expected[:, :, :3], bounds, style, strengths, sides)
    np.testing.assert_array_equal(to_host(views[0]), expected)


@ENGINES
@STYLES
def test_a_box_wider_than_default_shared_memory_holds_is_masked(
    run_kernels: tuple[MaskFn, object], style: MaskStyle
) -> None:
    """A box over about 2000 px wide (a face close to a 4K camera) needs more shared memory than a CUDA
    block gets by default: the launch opts in to the device's, instead of failing the batch. (A small
    object side gives the finest blocks, hence the most shared memory.)"""
    mask, xp = run_kernels
    _, views = padded_rgba(xp, 1, 12, 2600, seed=4)
    expected = to_host(views[0])
    bounds, strengths, sides = np.array([[40, 0, 2580, 12]]), np.zeros(1), np.full(1, 12)
    plan = kernel_plan([Surface.rgba(views[0])], np.zeros(1, int), bounds, style, strengths, sides, 1 << 20)
    assert style is MaskStyle.SOLID or max(step.shared_bytes for step in plan.launches) > SHARED_LIMIT

    mask([Surface.rgba(views[0])], np.zeros(1, int), bounds, style, strengths, sides)

    mask_boxes(expected[:, :, :3], bounds, style, strengths, sides)
    assert np.abs(to_host(views[0]).astype(int) - expected.astype(int)).max() <= PARITY_TOLERANCE


def test_overlapping_boxes_of_a_plane_go_in_later_layers_in_their_order() -> None:
    frames = [Surface(Layout.RGBA, 100, 100, (Plane(4096 * k, 400),)) for k in range(2)]
    bounds = np.array([[0, 0, 50, 50], [60, 60, 90, 90], [40, 40, 70, 70], [0, 0, 50, 50], [45, 45, 65, 65]])
    index = np.array([0, 0, 0, 1, 0])  # box 3 is on the other frame: it overlaps nothing there

    plan = kernel_plan(frames, index, bounds, MaskStyle.PIXELATE, np.ones(5), np.full(5, 20))

    # layers: 0 for boxes 0, 1, 3; 1 for box 2 (over 0 and 1); 2 for box 4 (over 2)
    assert plan.table[:, [COL["x1"], COL["ptr"]]].tolist() == [[0, 0], [60, 0], [0, 4096], [40, 0], [45, 0]]
    firsts = [step.first_band for step in plan.launches]
    counts = [step.bands for step in plan.launches]
    rows_per_launch = [
        sorted(set(plan.bands[f : f + n, 0].tolist())) for f, n in zip(firsts, counts, strict=True)
    ]
    assert rows_per_launch == [[0, 1, 2], [3], [4]]


def test_table_clips_to_the_surface_and_skips_empty_boxes() -> None:
    surface = Surface(Layout.RGBA, 100, 50, (Plane(4096, 512),))
    bounds = np.array([[-5, -5, 20, 10], [90, 40, 130, 70], [10, 10, 10, 30], [200, 0, 210, 10]])

    table = plane_table([surface], np.zeros(4, int), bounds, MaskStyle.PIXELATE, np.ones(4), np.full(4, 40))

    assert table[:, [COL["x1"], COL["y1"], COL["x2"], COL["y2"]]].tolist() == [
        [0, 0, 20, 10],
        [90, 40, 100, 50],
    ]
    assert (table[:, COL["block"]] == pixelate_block(40, 1.0)).all()
    assert (table[:, COL["pitch"]] == 512).all() and (table[:, COL["ptr"]] == 4096).all()


def test_plan_gives_every_band_of_every_box_one_cuda_block() -> None:
    surface = Surface(Layout.RGBA, 200, 100, (Plane(0, 800),))
    bounds = np.array([[0, 0, 30, 20], [50, 50, 51, 51], [100, 0, 200, 100]])
    sides = np.array([20, 1, 100])

    plan = kernel_plan([surface] * 2, np.array([0, 1, 1]), bounds, MaskStyle.BLUR, np.zeros(3), sides)

    blocks = [blur_block(int(s), 0.0) for s in sides]
    assert plan.table[:, COL["block"]].tolist() == plan.table[:, COL["band_rows"]].tolist() == blocks
    down = [-(-20 // blocks[0]), 1, -(-100 // blocks[2])]
    across = [-(-30 // blocks[0]), 1, -(-100 // blocks[2])]
    assert plan.bands.tolist() == [[row, band] for row in range(3) for band in range(down[row])]
    cells = [a * d for a, d in zip(across, down, strict=True)]
    assert plan.table[:, COL["cell_start"]].tolist() == [0, cells[0], cells[0] + cells[1]]
    assert plan.means == 3 * sum(cells)
    assert [(step.kernel, step.first_band, step.bands) for step in plan.launches] == [
        ("blur_means", 0, len(plan.bands)),
        ("blur_bands", 0, len(plan.bands)),
    ]
    assert [step.shared_bytes for step in plan.launches] == [
        12 * 100 + 12 * max(across),
        12 * 100 + 24 * max(across),
    ]


def test_solid_bands_group_rows_and_need_no_shared_memory() -> None:
    surface = Surface(Layout.RGBA, 64, 64, (Plane(0, 256),))
    plan = kernel_plan(
        [surface], np.zeros(1, int), np.array([[0, 0, 10, 20]]), MaskStyle.SOLID, np.ones(1), np.full(1, 10)
    )
    assert plan.bands.tolist() == [[0, band] for band in range(-(-20 // SOLID_BAND_ROWS))]
    assert [(step.kernel, step.shared_bytes) for step in plan.launches] == [("solid_bands", 0)]
    assert plan.means == 0


def test_plan_of_nothing_launches_no_block() -> None:
    surface = Surface(Layout.RGBA, 64, 64, (Plane(0, 256),))
    plan = kernel_plan(
        [surface], np.zeros(1, int), np.array([[70, 0, 80, 9]]), MaskStyle.BLUR, np.ones(1), np.ones(1)
    )
    assert len(plan.table) == len(plan.bands) == plan.means == 0


def test_rgba_planes_off_word_boundaries_are_refused() -> None:
    surface = Surface(Layout.RGBA, 64, 64, (Plane(2, 256),))
    with pytest.raises(ValueError, match="4-byte"):
        plane_table(
            [surface], np.zeros(1, int), np.array([[0, 0, 8, 8]]), MaskStyle.SOLID, np.ones(1), np.ones(1)
        )


def test_a_box_too_wide_for_shared_memory_is_refused() -> None:
    surface = Surface(Layout.RGBA, 20000, 8, (Plane(0, 80000),))
    with pytest.raises(ValueError, match="shared memory"):
        kernel_plan(
            [surface],
            np.zeros(1, int),
            np.array([[0, 0, 20000, 8]]),
            MaskStyle.BLUR,
            np.ones(1),
            np.full(1, 8),
        )


def test_an_odd_sized_nv12_surface_is_refused() -> None:
    with pytest.raises(ValueError, match="even sizes"):
        Surface(Layout.NV12, 63, 32, (Plane(1000, 128), Plane(9000, 128)))


def test_nv12_table_has_a_luma_and_a_half_size_chroma_row_per_box() -> None:
    surface = Surface(Layout.NV12, 64, 32, (Plane(1000, 128), Plane(9000, 128)))
    table = plane_table(
        [surface], np.zeros(1, int), np.array([[3, 5, 20, 16]]), MaskStyle.SOLID, np.ones(1), np.full(1, 11)
    )
    luma, chroma = table
    assert luma[[COL["ptr"], COL["pixel_bytes"], COL["channels"]]].tolist() == [1000, 1, 1]
    assert chroma[[COL["ptr"], COL["pixel_bytes"], COL["channels"]]].tolist() == [9000, 2, 2]
    assert chroma[[COL["x1"], COL["y1"], COL["x2"], COL["y2"]]].tolist() == [1, 2, 10, 8]
    y, u, v = solid_yuv()
    assert (luma[COL["c0"]], chroma[COL["c0"]], chroma[COL["c1"]]) == (y, u, v)


def test_noise_is_refused_by_the_table() -> None:
    with pytest.raises(ValueError, match="noise"):
        plane_table([], np.zeros(0, int), np.zeros((0, 4)), MaskStyle.NOISE, np.zeros(0), np.zeros(0))


def test_rgba_surface_refuses_an_rgb_array() -> None:
    with pytest.raises(ValueError, match="HxWx4"):
        Surface.rgba(np.zeros((4, 4, 3), np.uint8))


def test_the_kernels_read_the_table_columns_where_the_table_writes_them() -> None:
    defines = dict(re.findall(r"#define (\w+) (\d+)", gpu_masks._KERNELS))
    assert int(defines.pop("COLS")) == len(COL)
    assert {name: int(value) for name, value in defines.items()} == {
        name.upper(): COL[name]
        for name in (
            "ptr",
            "pitch",
            "pixel_bytes",
            "channels",
            "x1",
            "y1",
            "x2",
            "y2",
            "block",
            "band_rows",
            "c0",
            "cell_start",
        )
    }


def test_the_kernels_compile_for_a_hopper_gpu_without_spilling(tmp_path: Path) -> None:
    """Where the CUDA toolkit is installed (a GPU is not needed), the kernels build for sm_90 as nvrtc
    builds them at run time, and keep their per-channel values in registers."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("the CUDA toolkit (nvcc) is not installed")
    source = tmp_path / "kernels.cu"
    source.write_text(gpu_masks._KERNELS)
    command = [
        nvcc,
        "-arch=sm_90",
        "--fmad=false",
        "-cubin",
        "-Xptxas",
        "-v",
        "-o",
        str(tmp_path / "k.cubin"),
    ]
    report = subprocess.run([*command, str(source)], capture_output=True, text=True, check=True).stderr
    entries = re.findall(r"entry function '(\w+)'", report)
    assert sorted(entries) == sorted(k.name for kernels in gpu_masks.KERNELS.values() for k in kernels)
    assert "0 bytes spill stores" in report and not re.search(r"[1-9]\d* bytes spill", report)
