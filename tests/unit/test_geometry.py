"""Camera geometry: the expected pixel size of faces and plates on each image row."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.core.detections import ObjectClass
from orchestrator.core.geometry import CameraGeometry

W, H = 1920, 1080


def test_a_camera_tilted_down_sees_bigger_faces_at_the_bottom() -> None:
    px = CameraGeometry(height_m=5, tilt_deg=30, hfov_deg=70).object_px_per_row(
        ObjectClass.FACE, W, H, 60, 60
    )
    assert px.shape == (H,)
    assert px[-1] > 2 * px[0]
    assert (np.diff(px) >= -1e-9).all()  # never smaller further down


def test_a_higher_camera_sees_smaller_smallest_faces() -> None:
    # steep enough that every row looks at the ground well inside the range
    low = CameraGeometry(height_m=4, tilt_deg=45, hfov_deg=60).smallest_object_px(ObjectClass.FACE, W, H, 40)
    high = CameraGeometry(height_m=8, tilt_deg=45, hfov_deg=60).smallest_object_px(ObjectClass.FACE, W, H, 40)
    assert high < low


def test_rows_above_the_horizon_use_the_max_range() -> None:
    camera = CameraGeometry(height_m=6, tilt_deg=0, hfov_deg=90)  # horizon on the middle row
    px = camera.object_px_per_row(ObjectClass.FACE, W, H, max_range_m=50, unseen_m=50)
    at_max_range = camera.focal_px(W) * 0.16 / 50
    np.testing.assert_allclose(px[: H // 2], at_max_range)
    assert (px[H // 2 :] >= at_max_range - 1e-9).all()  # below it, never further than the range
    assert px[-1] > 3 * at_max_range
    assert camera.smallest_object_px(ObjectClass.FACE, W, H, 50) == pytest.approx(at_max_range)


def test_the_size_at_a_row_matches_the_pinhole_model() -> None:
    camera = CameraGeometry(height_m=4.6, tilt_deg=20, hfov_deg=60)
    f = camera.focal_px(W)
    row = 900
    angle = np.radians(20) + np.arctan((row + 0.5 - H / 2) / f)
    distance = (4.6 - 1.6) / np.sin(angle)
    px = camera.object_px_per_row(ObjectClass.FACE, W, H, 100, 100)
    assert px[row] == pytest.approx(f * 0.16 / distance)


def test_a_wider_field_of_view_makes_objects_smaller() -> None:
    narrow = CameraGeometry(height_m=5, tilt_deg=10, hfov_deg=40).smallest_object_px(
        ObjectClass.PLATE, W, H, 30
    )
    wide = CameraGeometry(height_m=5, tilt_deg=10, hfov_deg=90).smallest_object_px(
        ObjectClass.PLATE, W, H, 30
    )
    assert wide < narrow


def test_a_camera_below_face_height_can_see_a_face_from_up_close() -> None:
    # Mounted at 1.5 m looking level: no row says how near a face can come, so assume arm's length.
    camera = CameraGeometry(height_m=1.5, tilt_deg=0, hfov_deg=60)
    assert camera.largest_object_px(ObjectClass.FACE, 1920, 1080) > 500
    assert camera.smallest_object_px(ObjectClass.FACE, 1920, 1080, 40) < 10
