"""Decoders: CenterFace heads and DB probability maps -> boxes in source pixels; components; batched NMS."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

from orchestrator.core.boxes import iou_matrix
from orchestrator.core.decoders import (
    CENTERFACE_STRIDE,
    DBParams,
    batched_nms,
    decode_centerface,
    decode_db,
    label_components,
)
from orchestrator.core.detections import Detections, ObjectClass

DATA = Path(__file__).parent / "data"  # recorded model outputs: see data/make_recorded.py
CENTERFACE_RECORDING = DATA / "centerface_astronaut_256.npz"
PLATE_RECORDING = DATA / "ppocr_plate_256x256.npz"


# --- CenterFace -------------------------------------------------------------------------------------------


def centerface_heads(batch: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((batch, 1, h, w), np.float32),
        np.zeros((batch, 2, h, w), np.float32),
        np.zeros((batch, 2, h, w), np.float32),
    )


def put_face(heads, frame, cy, cx, score, size_hw, offset_yx=(0.0, 0.0)) -> np.ndarray:
    """Write one face into the heads; return its expected box in network-input pixels."""
    heatmap, scale, offset = heads
    heatmap[frame, 0, cy, cx] = score
    scale[frame, :, cy, cx] = np.log(np.asarray(size_hw) / CENTERFACE_STRIDE)
    offset[frame, :, cy, cx] = offset_yx
    centre_y = (cy + offset_yx[0] + 0.5) * CENTERFACE_STRIDE
    centre_x = (cx + offset_yx[1] + 0.5) * CENTERFACE_STRIDE
    h, w = size_hw
    return np.array([centre_x - w / 2, centre_y - h / 2, centre_x + w / 2, centre_y + h / 2])


def test_centerface_returns_each_face_in_source_pixels_of_its_frame() -> None:
    heads = centerface_heads(batch=2, h=16, w=24)
    first = put_face(heads, frame=0, cy=5, cx=7, score=0.9, size_hw=(24, 16), offset_yx=(0.25, 0.5))
    second = put_face(heads, frame=1, cy=10, cx=3, score=0.6, size_hw=(40, 32), offset_yx=(-0.5, 0.1))
    sx, sy = 0.5, 0.25  # network = source * scale

    det = decode_centerface(*heads, threshold=0.5, input_scale=(sx, sy))

    assert len(det) == 2
    order = np.argsort(det.frame_index)
    assert det.frame_index[order].tolist() == [0, 1]
    assert (det.classes == ObjectClass.FACE).all()
    expected = np.stack([first, second]) / [sx, sy, sx, sy]
    np.testing.assert_allclose(det.boxes[order], expected, rtol=1e-5)
    np.testing.assert_allclose(det.scores[order], [0.9, 0.6], rtol=1e-6)


def test_centerface_ignores_cells_below_threshold() -> None:
    heads = centerface_heads(batch=1, h=8, w=8)
    put_face(heads, 0, 2, 2, score=0.9, size_hw=(8, 8))
    put_face(heads, 0, 6, 6, score=0.4, size_hw=(8, 8))
    det = decode_centerface(*heads, threshold=0.5, input_scale=(1.0, 1.0))
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(0.9)


def test_centerface_gives_one_box_per_peak_not_per_hot_cell() -> None:
    heads = centerface_heads(batch=1, h=8, w=8)
    put_face(heads, 0, 4, 4, score=0.9, size_hw=(8, 8))
    heads[0][0, 0, 3:6, 3:6] = np.maximum(heads[0][0, 0, 3:6, 3:6], 0.7)  # the face's warm shoulder
    det = decode_centerface(*heads, threshold=0.5, input_scale=(1.0, 1.0))
    assert len(det) == 1


def test_centerface_has_no_cap_on_the_count() -> None:
    heads = centerface_heads(batch=1, h=40, w=32)
    for i in range(20):
        for j in range(15):
            put_face(heads, 0, 2 * i, 2 * j, score=0.8, size_hw=(4, 4))  # 4 px faces 8 px apart
    det = decode_centerface(*heads, threshold=0.5, input_scale=(1.0, 1.0))
    assert len(det) == 300


def test_centerface_on_an_empty_heatmap_finds_nothing() -> None:
    det = decode_centerface(*centerface_heads(2, 8, 8), threshold=0.5, input_scale=(1.0, 1.0))
    assert len(det) == 0


def test_centerface_on_recorded_model_outputs_finds_the_astronaut() -> None:
    rec = np.load(CENTERFACE_RECORDING)
    heads = [rec[name].astype(np.float32) for name in ("heatmap", "scale", "offset")]
    assert heads[0].shape == (1, 1, 64, 64)

    det = decode_centerface(*heads, threshold=0.5, input_scale=(256 / 512, 256 / 512))

    assert len(det) == 1
    face_region = np.array([[170, 40, 290, 190]], np.float32)  # 512x512 original
    assert iou_matrix(det.boxes, face_region)[0, 0] > 0.5
    centre = (det.boxes[0, :2] + det.boxes[0, 2:]) / 2
    assert 170 < centre[0] < 290 and 40 < centre[1] < 190


# --- batched NMS ------------------------------------------------------------------------------------------


def test_batched_nms_keeps_the_same_box_on_different_frames() -> None:
    box = np.array([[10, 10, 50, 50]] * 2, np.float32)
    det = Detections.build(box, [0.9, 0.8], ObjectClass.FACE, np.array([0, 1]))
    kept = batched_nms(det, 0.3)
    assert sorted(kept.frame_index.tolist()) == [0, 1]


def test_batched_nms_suppresses_duplicates_within_a_frame() -> None:
    b = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [10, 10, 50, 50]], np.float32)
    det = Detections.build(b, [0.7, 0.9, 0.8], ObjectClass.FACE, np.array([0, 0, 1]))
    kept = batched_nms(det, 0.3)
    assert len(kept) == 2
    assert kept.scores[kept.frame_index == 0].tolist() == pytest.approx([0.9])


def test_batched_nms_keeps_classes_apart() -> None:
    b = np.array([[10, 10, 50, 50]], np.float32)
    det = Detections.concat(
        [Detections.build(b, [0.9], ObjectClass.FACE), Detections.build(b, [0.8], ObjectClass.PLATE)]
    )
    assert len(batched_nms(det, 0.3)) == 2


def test_batched_nms_keeps_groups_apart_when_boxes_leave_the_frame() -> None:
    b = np.array([[-50, -50, 10, 10]], np.float32)
    det = Detections.concat(
        [Detections.build(b, [0.9], ObjectClass.FACE), Detections.build(b, [0.8], ObjectClass.PLATE)]
    )
    assert len(batched_nms(det, 0.3)) == 2


# --- connected components ---------------------------------------------------------------------------------


def flood_fill_components(mask: np.ndarray) -> list[set[int]]:
    """Brute-force 4-connected components as sets of flat indices."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    components = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        seen[y, x] = True
        queue, members = deque([(y, x)]), set()
        while queue:
            cy, cx = queue.popleft()
            members.add(cy * w + cx)
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        components.append(members)
    return components


def components_of(mask: np.ndarray) -> list[set[int]]:
    pixels, labels = label_components(mask)
    groups: dict[int, set[int]] = {}
    for p, lab in zip(pixels.tolist(), labels.tolist(), strict=True):
        groups.setdefault(lab, set()).add(p)
    for lab, members in groups.items():
        assert lab == min(members)  # documented: the label is the smallest flat index
    return list(groups.values())


def as_sorted(components: list[set[int]]) -> list[list[int]]:
    return sorted(sorted(c) for c in components)


def test_u_shape_is_one_component() -> None:
    mask = np.array(
        [
            [1, 0, 0, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 1, 1],
        ],
        dtype=bool,
    )
    assert len(components_of(mask)) == 1


def test_diagonal_neighbours_do_not_connect() -> None:
    mask = np.eye(5, dtype=bool) | np.eye(5, dtype=bool)[::-1]
    assert len(components_of(mask)) == 9  # an X of 9 single pixels, centre shared


def test_separate_blobs_and_edge_pixels_are_separate_components() -> None:
    mask = np.zeros((6, 7), bool)
    mask[0, 0] = True
    mask[0, 6] = True  # same row, far right: must not wrap to the next row's start
    mask[1, 0] = True
    mask[3:5, 2:5] = True
    mask[5, 6] = True
    assert as_sorted(components_of(mask)) == as_sorted(flood_fill_components(mask))
    assert len(components_of(mask)) == 4


def test_row_end_does_not_join_the_next_row_start() -> None:
    mask = np.zeros((3, 4), bool)
    mask[0, 3] = mask[1, 0] = True  # flat indices 3 and 4 are adjacent in memory only
    assert len(components_of(mask)) == 2


def test_empty_mask_has_no_components() -> None:
    pixels, labels = label_components(np.zeros((5, 5), bool))
    assert len(pixels) == 0 and len(labels) == 0


@pytest.mark.parametrize("seed", range(12))
def test_components_match_a_flood_fill_on_random_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 24, size=2)
    mask = rng.random((h, w)) < rng.uniform(0.3, 0.7)
    assert as_sorted(components_of(mask)) == as_sorted(flood_fill_components(mask))


def test_a_long_snake_is_one_component() -> None:
    mask = np.zeros((21, 21), bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    assert len(components_of(mask)) == 1


# --- DB text maps -----------------------------------------------------------------------------------------


def unclip(w: float, h: float, ratio: float = DBParams().unclip_ratio) -> float:
    return w * h * ratio / (2 * (w + h))


def db_map(height: int = 64, width: int = 96) -> np.ndarray:
    return np.zeros((1, 1, height, width), np.float32)


def test_db_two_rectangles_give_two_unclipped_boxes_in_source_pixels() -> None:
    prob = db_map()
    prob[0, 0, 10:20, 10:50] = 0.9  # 40 x 10
    prob[0, 0, 30:50, 60:80] = 0.8  # 20 x 20
    sx, sy = 0.5, 2.0

    det = decode_db(prob, (sx, sy), DBParams())

    assert len(det) == 2
    order = np.argsort(det.boxes[:, 0])
    da, db = unclip(40, 10), unclip(20, 20)
    expected = np.array(
        [
            [(10 - da) / sx, (10 - da) / sy, (50 + da) / sx, (20 + da) / sy],
            [(60 - db) / sx, (30 - db) / sy, (80 + db) / sx, (50 + db) / sy],
        ]
    )
    np.testing.assert_allclose(det.boxes[order], expected, rtol=1e-5)
    np.testing.assert_allclose(det.scores[order], [0.9, 0.8], rtol=1e-5)
    assert (det.classes == ObjectClass.TEXT).all()


def test_db_unclip_grows_with_the_ratio() -> None:
    prob = db_map()
    prob[0, 0, 10:20, 10:50] = 0.9
    small = decode_db(prob, (1.0, 1.0), DBParams(unclip_ratio=1.0)).boxes[0]
    large = decode_db(prob, (1.0, 1.0), DBParams(unclip_ratio=2.0)).boxes[0]
    assert large[0] < small[0] and large[2] > small[2]
    assert (small[2] - small[0]) - 40 == pytest.approx(2 * unclip(40, 10, 1.0))


def test_db_box_threshold_drops_faint_regions() -> None:
    prob = db_map()
    prob[0, 0, 10:20, 10:50] = 0.9
    prob[0, 0, 30:40, 60:90] = 0.4  # above the pixel threshold, below the box threshold
    det = decode_db(prob, (1.0, 1.0), DBParams(box_threshold=0.5))
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(0.9)
    assert len(decode_db(prob, (1.0, 1.0), DBParams(box_threshold=0.35))) == 2


def test_db_min_aspect_keeps_only_wide_regions() -> None:
    prob = db_map()
    prob[0, 0, 10:20, 10:50] = 0.9  # wide
    prob[0, 0, 30:50, 60:80] = 0.9  # square
    det = decode_db(prob, (1.0, 1.0), DBParams(min_aspect=1.2))
    assert len(det) == 1
    assert det.boxes[0, 0] < 10  # the wide one


def test_db_max_height_share_drops_tall_regions() -> None:
    prob = db_map(height=128)
    prob[0, 0, 2:10, 10:50] = 0.9  # 8 rows, 19 once grown by the unclip distance: under 1/4 of the map
    prob[0, 0, 20:60, 60:90] = 0.9  # 40 rows: over 1/4 of the map
    det = decode_db(prob, (1.0, 1.0), DBParams(max_height_share=0.25))
    assert len(det) == 1
    assert det.boxes[0, 1] < 10


def test_db_drops_slivers_thinner_than_min_side() -> None:
    prob = db_map()
    prob[0, 0, 10:12, 10:80] = 0.9  # 2 px tall
    assert len(decode_db(prob, (1.0, 1.0), DBParams(min_side=3))) == 0


def test_db_labels_frames_of_a_batch() -> None:
    prob = np.zeros((3, 1, 32, 32), np.float32)
    prob[0, 0, 4:10, 4:20] = 0.9
    prob[2, 0, 4:10, 4:20] = 0.9
    prob[2, 0, 20:26, 4:20] = 0.9
    det = decode_db(prob, (1.0, 1.0), DBParams(), ObjectClass.PLATE)
    assert sorted(det.frame_index.tolist()) == [0, 2, 2]
    assert (det.classes == ObjectClass.PLATE).all()


@pytest.mark.parametrize(
    "params",
    [DBParams(), DBParams(min_aspect=1.2, max_height_share=0.25)],  # the second as PlateTextDetector
    ids=["default", "plate-filters"],
)
def test_db_on_recorded_model_output_finds_the_plate_text(params: DBParams) -> None:
    rec = np.load(PLATE_RECORDING)
    prob = rec["probability"].astype(np.float32)
    assert prob.shape == (1, 1, 256, 256)

    det = decode_db(prob, (1.0, 1.0), params, ObjectClass.PLATE)

    assert len(det) == 1
    assert det.classes[0] == ObjectClass.PLATE
    box, text, plate = det.boxes[0], rec["text"], rec["plate"]
    # covers the text it was drawn from, give or take 2 px
    assert (box[:2] <= text[:2] + 2).all() and (box[2:] >= text[2:] - 2).all()
    # the unclip does not run wild: inside the plate grown by 50 %
    centre, half = (plate[:2] + plate[2:]) / 2, (plate[2:] - plate[:2]) / 2 * 1.5
    assert (box[:2] >= centre - half).all() and (box[2:] <= centre + half).all()
