"""Box arithmetic: IoU, greedy NMS, margins and integer pixel bounds."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.core.boxes import grow, iou_matrix, nms, to_pixel_bounds


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    a = boxes((0, 0, 10, 10))
    b = boxes((0, 0, 10, 10), (20, 20, 30, 30), (5, 0, 15, 10))
    iou = iou_matrix(a, b)
    assert iou.shape == (1, 3)
    # the third box shares 50 of 150 px of union
    np.testing.assert_allclose(iou[0], [1.0, 0.0, 50 / 150], rtol=1e-6)


def test_iou_matrix_is_pairwise_and_symmetric() -> None:
    a = boxes((0, 0, 4, 4), (2, 2, 6, 6))
    b = boxes((0, 0, 4, 4), (2, 2, 6, 6), (100, 100, 101, 101))
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[:, :2], iou[:, :2].T)
    assert iou[0, 1] == pytest.approx(4 / 28)


def test_iou_of_zero_area_boxes_is_zero_not_nan() -> None:
    iou = iou_matrix(boxes((3, 3, 3, 3)), boxes((3, 3, 3, 3)))
    assert iou[0, 0] == 0.0


def test_nms_keeps_the_best_and_suppresses_its_overlaps() -> None:
    b = boxes((0, 0, 10, 10), (1, 1, 11, 11), (0, 0, 10, 9))
    keep = nms(b, np.array([0.5, 0.9, 0.7], dtype=np.float32), iou_threshold=0.3)
    assert keep.tolist() == [1]


def test_nms_keeps_disjoint_boxes_in_descending_score_order() -> None:
    b = boxes((0, 0, 10, 10), (50, 50, 60, 60), (100, 0, 110, 10), (1, 1, 11, 11))
    scores = np.array([0.3, 0.9, 0.6, 0.2], dtype=np.float32)
    keep = nms(b, scores, iou_threshold=0.3)
    assert keep.tolist() == [1, 2, 0]


def test_nms_keeps_overlaps_at_or_below_the_threshold() -> None:
    b = boxes((0, 0, 10, 10), (5, 0, 15, 10))  # IoU 1/3
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(b, scores, iou_threshold=0.4).tolist() == [0, 1]
    assert nms(b, scores, iou_threshold=0.3).tolist() == [0]
    half = boxes((0, 0, 10, 10), (0, 0, 10, 5))  # IoU exactly 0.5
    assert nms(half, scores, iou_threshold=0.5).tolist() == [0, 1]


def test_nms_of_nothing_is_empty() -> None:
    assert len(nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)) == 0


def test_grow_adds_a_share_of_the_size_per_side() -> None:
    grown = grow(boxes((10, 20, 30, 60)), 0.1)  # 20 wide, 40 tall
    np.testing.assert_allclose(grown, [[8, 16, 32, 64]])


def test_grow_adds_absolute_pixels_on_top_of_the_margin() -> None:
    grown = grow(boxes((10, 20, 30, 60)), 0.1, pixels=3)
    np.testing.assert_allclose(grown, [[5, 13, 35, 67]])


def test_grow_takes_one_margin_and_slack_per_box() -> None:
    b = boxes((0, 0, 10, 10), (0, 0, 10, 10))
    grown = grow(b, np.array([0.0, 0.5], np.float32), np.array([1.0, 0.0], np.float32))
    np.testing.assert_allclose(grown, [[-1, -1, 11, 11], [-5, -5, 15, 15]])


def test_pixel_bounds_cover_fractional_boxes_fully() -> None:
    bounds = to_pixel_bounds(boxes((1.2, 2.7, 5.1, 6.0)), width=100, height=100)
    assert bounds.dtype == np.int64
    assert bounds.tolist() == [[1, 2, 6, 6]]


def test_pixel_bounds_are_clipped_to_the_frame() -> None:
    bounds = to_pixel_bounds(boxes((-5.5, -1, 120.2, 50.5), (200, 200, 300, 300)), width=100, height=40)
    assert bounds.tolist() == [[0, 0, 100, 40], [100, 40, 100, 40]]
