"""Mask styles on every array backend: what changes, what never does, and how strong the mask is."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest
from backends import BACKENDS, cupy_param

from orchestrator.core.masks import (
    SOLID_COLOUR,
    MaskStyle,
    blur_block,
    mask_boxes,
    mask_region,
    pixelate_block,
    polygon_mask,
)
from orchestrator.core.xp import to_numpy

STYLES = pytest.mark.parametrize("style", list(MaskStyle), ids=lambda s: s.value)


def noise_frame(xp: ModuleType, h: int = 60, w: int = 80, seed: int = 0) -> tuple[object, np.ndarray]:
    """A random frame on the backend, and a host copy of the original."""
    host = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return xp.asarray(host.copy()), host


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def bounds(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def checkerboard(h: int, w: int) -> np.ndarray:
    cells = (np.indices((h, w)).sum(axis=0) % 2).astype(np.uint8) * 255
    return np.repeat(cells[:, :, None], 3, axis=2)


def distinct_runs(values: np.ndarray, axis: int) -> int:
    """How many runs of identical slices along `axis` (blocks across that axis)."""
    slices = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    return 1 + int((slices[1:] != slices[:-1]).any(axis=1).sum())


@BACKENDS
@STYLES
def test_mask_boxes_changes_inside_and_never_outside(xp: ModuleType, style: MaskStyle) -> None:
    frame, before = noise_frame(xp)
    box = bounds((10, 5, 50, 45))
    inside = np.zeros(before.shape[:2], bool)
    inside[5:45, 10:50] = True

    count = mask_boxes(frame, box, style, np.array([0.5]))

    after = to_numpy(frame)
    diff = changed(before, after)
    assert count == 1
    assert not diff[~inside].any()
    assert diff[inside].mean() > 0.9  # a random pixel rarely survives any style


@BACKENDS
@STYLES
def test_overlapping_boxes_are_both_masked_and_nothing_else(xp: ModuleType, style: MaskStyle) -> None:
    frame, before = noise_frame(xp)
    inside = np.zeros(before.shape[:2], bool)
    inside[5:35, 5:35] = inside[20:50, 20:70] = True

    count = mask_boxes(frame, bounds((5, 5, 35, 35), (20, 20, 70, 50)), style, np.array([1.0, 0.0]))

    diff = changed(before, to_numpy(frame))
    assert count == 2
    assert not diff[~inside].any()
    assert diff[inside].mean() > 0.9


@BACKENDS
@STYLES
def test_zero_size_boxes_are_skipped(xp: ModuleType, style: MaskStyle) -> None:
    frame, before = noise_frame(xp)
    count = mask_boxes(frame, bounds((10, 10, 10, 30), (10, 10, 30, 10), (30, 30, 20, 40)), style, np.ones(3))
    assert count == 0
    np.testing.assert_array_equal(to_numpy(frame), before)


@BACKENDS
def test_solid_paints_the_solid_colour(xp: ModuleType) -> None:
    frame, _ = noise_frame(xp)
    mask_boxes(frame, bounds((0, 0, 20, 10)), MaskStyle.SOLID, np.ones(1))
    assert (to_numpy(frame)[0:10, 0:20] == SOLID_COLOUR).all()


@BACKENDS
@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(("h", "w"), [(40, 40), (37, 23), (9, 50)])
def test_pixelate_leaves_at_most_ceil_side_over_block_blocks(
    xp: ModuleType, strength: float, h: int, w: int
) -> None:
    frame, _ = noise_frame(xp, h=h + 4, w=w + 4)
    mask_boxes(frame, bounds((2, 2, 2 + w, 2 + h)), MaskStyle.PIXELATE, np.array([strength]))
    region = to_numpy(frame)[2 : 2 + h, 2 : 2 + w]
    block = pixelate_block(min(h, w), strength)
    assert distinct_runs(region, axis=0) <= math.ceil(h / block)
    assert distinct_runs(region, axis=1) <= math.ceil(w / block)
    assert distinct_runs(region, axis=1) > 1  # still a mosaic, not a flat fill


@BACKENDS
def test_pixelate_strength_one_keeps_fewer_blocks_than_zero(xp: ModuleType) -> None:
    runs = {}
    for strength in (0.0, 1.0):
        frame, _ = noise_frame(xp, 100, 100)
        mask_boxes(frame, bounds((0, 0, 100, 100)), MaskStyle.PIXELATE, np.array([strength]))
        runs[strength] = distinct_runs(to_numpy(frame), axis=1)
    assert runs[1.0] <= 4 < runs[0.0] <= 10


@BACKENDS
def test_blur_flattens_a_checkerboard(xp: ModuleType) -> None:
    board = checkerboard(48, 64)
    frame = xp.asarray(board.copy())
    mask_boxes(frame, bounds((0, 0, 64, 48)), MaskStyle.BLUR, np.array([0.0]))
    after = to_numpy(frame).astype(np.float64)
    assert after.var() < 0.01 * board.astype(np.float64).var()
    assert abs(after.mean() - board.mean()) < 5


@BACKENDS
def test_blur_strength_one_is_smoother_than_zero(xp: ModuleType) -> None:
    assert blur_block(96, 1.0) > blur_block(96, 0.0)
    roughness = {}
    for strength in (0.0, 1.0):
        frame, _ = noise_frame(xp, 96, 96, seed=3)
        mask_boxes(frame, bounds((0, 0, 96, 96)), MaskStyle.BLUR, np.array([strength]))
        roughness[strength] = to_numpy(frame).astype(np.float64).var()
    assert roughness[1.0] < 0.7 * roughness[0.0]


@BACKENDS
def test_noise_replaces_the_region_with_random_pixels(xp: ModuleType) -> None:
    frame = xp.zeros((40, 40, 3), dtype=xp.uint8)
    mask_boxes(frame, bounds((0, 0, 40, 40)), MaskStyle.NOISE, np.ones(1))
    region = to_numpy(frame)
    assert len(np.unique(region)) > 200


# --- polygons and regions ---------------------------------------------------------------------------------


@BACKENDS
def test_rectangle_polygon_covers_its_pixels(xp: ModuleType) -> None:
    width, height = 100, 60
    rect = np.array([[0.2, 0.25], [0.7, 0.25], [0.7, 0.75], [0.2, 0.75]])
    mask = to_numpy(polygon_mask(rect, width, height, xp))
    assert mask.shape == (height, width) and mask.dtype == bool
    rows, cols = np.nonzero(mask)
    assert abs((rows.max() - rows.min() + 1) - 30) <= 1
    assert abs((cols.max() - cols.min() + 1) - 50) <= 1
    assert abs(int(mask.sum()) - 50 * 30) <= 50 + 30  # within one row or column
    assert not mask[:10].any() and not mask[:, :15].any()


@BACKENDS
def test_triangle_covers_about_half_its_bounding_box(xp: ModuleType) -> None:
    mask = to_numpy(polygon_mask(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 80, 80, xp))
    assert mask.sum() == pytest.approx(80 * 80 / 2, rel=0.03)
    assert mask[5, 5] and not mask[75, 75]


@BACKENDS
def test_concave_polygon_leaves_its_notch_uncovered(xp: ModuleType) -> None:
    # a U: outer 0.1..0.9, with the notch x 0.4..0.6 open from the top down to y 0.6
    u_shape = np.array(
        [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.6, 0.6], [0.6, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    )
    mask = to_numpy(polygon_mask(u_shape, 100, 100, xp))
    assert not mask[30, 50]  # in the notch
    assert mask[30, 20] and mask[30, 80] and mask[80, 50]
    expected = 0.8 * 0.8 - 0.2 * 0.5
    assert mask.sum() == pytest.approx(expected * 100 * 100, rel=0.03)


@BACKENDS
@STYLES
def test_mask_region_changes_only_pixels_inside_the_mask(xp: ModuleType, style: MaskStyle) -> None:
    frame, before = noise_frame(xp)
    triangle = np.array([[0.1, 0.1], [0.9, 0.2], [0.3, 0.9]])
    region = polygon_mask(triangle, 80, 60, xp)
    inside = to_numpy(region)

    mask_region(frame, region, style, 1.0)

    diff = changed(before, to_numpy(frame))
    assert not diff[~inside].any()
    assert diff[inside].mean() > 0.9


@BACKENDS
def test_mask_region_with_an_empty_mask_changes_nothing(xp: ModuleType) -> None:
    frame, before = noise_frame(xp)
    mask_region(frame, xp.zeros((60, 80), dtype=bool), MaskStyle.SOLID, 1.0)
    np.testing.assert_array_equal(to_numpy(frame), before)


@pytest.mark.parametrize(
    "style", [MaskStyle.BLUR, MaskStyle.PIXELATE, MaskStyle.SOLID], ids=lambda s: s.value
)
@pytest.mark.parametrize("xp", [cupy_param()])
def test_gpu_masks_equal_cpu_masks_within_one_level(xp: ModuleType, style: MaskStyle) -> None:
    frame, host = noise_frame(xp, 120, 160)
    on_cpu = host.copy()
    boxes, strengths = bounds((10, 10, 90, 70), (60, 40, 150, 110)), np.array([0.3, 1.0])
    mask_boxes(frame, boxes, style, strengths)
    mask_boxes(on_cpu, boxes, style, strengths)
    assert np.abs(to_numpy(frame).astype(int) - on_cpu.astype(int)).max() <= 1


@BACKENDS
def test_a_cut_object_is_pixelated_as_coarsely_as_the_whole_object(xp: ModuleType) -> None:
    frame, _ = noise_frame(xp, 120, 160)
    # Only a 40 px wide strip of a 300 px face is inside the frame.
    mask_boxes(frame, bounds((0, 0, 40, 120)), MaskStyle.PIXELATE, np.array([1.0]), np.array([300]))
    strip = to_numpy(frame)[:, :40]
    assert len(np.unique(strip[:, 0, 0])) <= math.ceil(120 / pixelate_block(300, 1.0))
