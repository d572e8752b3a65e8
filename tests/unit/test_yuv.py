"""Masks on yuv420p and NV12 planes, and the frame step on yuv420p frames as batch video decodes them."""

from __future__ import annotations

import av
import numpy as np
import pytest

from orchestrator.core.masks import SOLID_COLOUR, MaskStyle, mask_boxes
from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.core.yuv import (
    Yuv420Frame,
    chroma_bounds,
    chroma_mask,
    mask_yuv_boxes,
    mask_yuv_region,
    solid_yuv,
)
from orchestrator.dataplane.frame_step import StreamAnonymizer
from orchestrator.video_frames import rgb_array
from unit.test_frame_step import FACE, FACE_BOX, FakeDetector, H, W, profile

BOUNDS = np.array([[3, 5, 29, 22], [30, 1, 41, 12], [0, 40, 64, 48]])  # odd edges, one across the frame
STRENGTHS, SIDES = np.array([0.0, 0.5, 1.0]), np.array([17, 11, 8])


def yuv_frame(h: int, w: int, seed: int = 0) -> Yuv420Frame:
    rng = np.random.default_rng(seed)
    return Yuv420Frame(rng.integers(0, 256, size=(h * 3 // 2, w), dtype=np.uint8))


def test_planes_are_views_of_ffmpegs_layout_even_when_chroma_rows_run_across_lines() -> None:
    frame = yuv_frame(10, 8)  # chroma planes of 5x4: two and a half lines of the array each
    u, v = frame.chroma
    assert frame.shape == (10, 8, 3) and frame.luma.shape == (10, 8) and u.shape == v.shape == (5, 4, 1)
    u[...], v[...] = 1, 2
    np.testing.assert_array_equal(frame.data[10:].reshape(-1), [1] * 20 + [2] * 20)


@pytest.mark.parametrize("style", [MaskStyle.BLUR, MaskStyle.PIXELATE], ids=lambda s: s.value)
def test_planar_and_interleaved_chroma_are_masked_alike_plane_by_plane(style: MaskStyle) -> None:
    frame = yuv_frame(48, 64)
    luma = frame.luma.copy()
    interleaved = np.concatenate(frame.chroma, axis=2)  # NV12's one chroma plane, as the GPU masks see it
    expected_luma = luma[:, :, None].copy()  # luma is masked as one channel of an RGB frame would be
    mask_boxes(expected_luma, BOUNDS, style, STRENGTHS, SIDES)

    assert frame.mask_boxes(BOUNDS, style, STRENGTHS, SIDES) == 3
    mask_yuv_boxes(luma, [interleaved], BOUNDS, style, STRENGTHS, SIDES)

    np.testing.assert_array_equal(frame.luma, expected_luma[:, :, 0])
    np.testing.assert_array_equal(frame.luma, luma)
    np.testing.assert_array_equal(np.concatenate(frame.chroma, axis=2), interleaved)


def test_solid_paints_every_luma_pixel_and_the_chroma_that_covers_it() -> None:
    frame = yuv_frame(48, 64)
    before = frame.data.copy()
    frame.mask_boxes(BOUNDS, MaskStyle.SOLID, STRENGTHS, SIDES)
    y, u, v = solid_yuv()
    inside = np.zeros((48, 64), bool)
    for x1, y1, x2, y2 in BOUNDS:
        inside[y1:y2, x1:x2] = True
    assert (frame.luma[inside] == y).all()
    np.testing.assert_array_equal(frame.luma[~inside], before[:48][~inside])
    half = chroma_mask(inside)
    assert (frame.chroma[0][half] == u).all() and (frame.chroma[1][half] == v).all()
    for x1, y1, x2, y2 in chroma_bounds(BOUNDS):
        assert half[y1:y2, x1:x2].all()


def test_a_zone_is_masked_on_every_plane_and_nothing_else_changes() -> None:
    frame = yuv_frame(48, 64)
    before = Yuv420Frame(frame.data.copy())
    zone = np.zeros((48, 64), bool)
    zone[7:20, 11:33] = True  # odd edges: the chroma of the edge pixels is masked too
    frame.mask_region(zone, MaskStyle.PIXELATE, 1.0)
    assert (frame.luma != before.luma)[zone].mean() > 0.5
    np.testing.assert_array_equal(frame.luma[~zone], before.luma[~zone])
    half = chroma_mask(zone)
    assert half[3:10, 5:17].all() and half.sum() == 7 * 12
    for plane, original in zip(frame.chroma, before.chroma, strict=True):
        np.testing.assert_array_equal(plane[~half], original[~half])


def test_mask_yuv_region_with_solid_fills_the_zone() -> None:
    frame = yuv_frame(8, 8)
    mask_yuv_region(frame.luma, frame.chroma, np.ones((8, 8), bool), MaskStyle.SOLID, 1.0)
    y, u, v = solid_yuv()
    assert (frame.luma == y).all() and (frame.chroma[0] == u).all() and (frame.chroma[1] == v).all()


def test_the_frame_step_masks_yuv_frames_and_fails_them_closed_on_every_plane() -> None:
    detector = FakeDetector(FACE, [FACE_BOX])
    stream = StreamAnonymizer(CameraContext(profile(), W, H), {FACE: detector})
    frames = [yuv_frame(H, W, seed) for seed in range(2)]

    results = stream.process(frames)

    y, u, v = solid_yuv()
    x1, y1, x2, y2 = FACE_BOX
    assert all(r.image is f and not r.failed for r, f in zip(results, frames, strict=True))
    assert all((f.luma[y1:y2, x1:x2] == y).all() for f in frames)
    detector.error = RuntimeError("inference server gone")
    failed = [yuv_frame(H, W, 7)]
    assert stream.process(failed)[0].failed
    assert (
        (failed[0].luma == y).all() and (failed[0].chroma[0] == u).all() and (failed[0].chroma[1] == v).all()
    )


def test_a_restricted_profile_drops_a_yuv_frame_it_cannot_analyse() -> None:
    detector = FakeDetector(FACE, [FACE_BOX], error=ValueError("corrupt tensor"))
    stream = StreamAnonymizer(CameraContext(BUILTIN_PROFILES["restricted"], W, H), {FACE: detector})
    assert stream.process([yuv_frame(H, W)])[0].image is None


def test_solid_yuv_is_the_grey_of_solid_colour() -> None:
    assert SOLID_COLOUR[0] == SOLID_COLOUR[1] == SOLID_COLOUR[2]
    y, u, v = solid_yuv()
    assert (u, v) == (128, 128)
    assert y == round(16 + 219 * SOLID_COLOUR[0] / 255)


def test_chroma_bounds_cover_every_luma_pixel() -> None:
    bounds = np.array([[3, 5, 20, 16], [0, 0, 1, 1]])
    assert chroma_bounds(bounds).tolist() == [[1, 2, 10, 8], [0, 0, 1, 1]]


@pytest.mark.parametrize(
    "data",
    [
        np.zeros((15, 9), np.uint8),  # odd width
        np.zeros((16, 8), np.uint8),  # not H*3/2 rows
        np.zeros((15, 16), np.uint8)[:, ::2],  # a strided view: the chroma reshapes would copy
        np.zeros((15, 8), np.int16),
    ],
    ids=["odd width", "rows", "strided", "dtype"],
)
def test_a_yuv_frame_refuses_arrays_its_plane_views_cannot_write_through(data: np.ndarray) -> None:
    with pytest.raises(ValueError, match="yuv420p"):
        Yuv420Frame(data)


def test_rgb_array_converts_a_yuv_frame_as_ffmpeg_does() -> None:
    frame = yuv_frame(48, 64)
    expected = av.VideoFrame.from_ndarray(frame.data, format="yuv420p").to_ndarray(format="rgb24")
    np.testing.assert_array_equal(rgb_array(frame), expected)
    rgb = np.zeros((4, 6, 3), np.uint8)
    assert rgb_array(rgb) is rgb
