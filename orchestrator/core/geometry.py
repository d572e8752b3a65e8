"""Camera geometry -> how many pixels a face or a plate spans at each image row.

A pinhole camera at `height_m` above flat ground, pitched `tilt_deg` below the horizon, with a horizontal
field of view `hfov_deg`. An object of real size S at distance d spans f * S / d pixels, where
f = (width / 2) / tan(hfov / 2). The ray through row y meets the object's height (a face at 1.6 m, a plate
at 0.6 m) at distance (camera height - object height) / sin(angle below horizon).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .detections import ObjectClass

# Real-world short sides (metres: face width, plate height) and heights above ground of each object.
OBJECT_SIZE_M = {ObjectClass.FACE: 0.16, ObjectClass.PLATE: 0.11}
OBJECT_HEIGHT_M = {ObjectClass.FACE: 1.6, ObjectClass.PLATE: 0.6}
NEAREST_M = 0.5  # no object is nearer to a camera than this


@dataclass(frozen=True)
class CameraGeometry:
    height_m: float
    tilt_deg: float
    hfov_deg: float

    def focal_px(self, width: int) -> float:
        return (width / 2) / np.tan(np.radians(self.hfov_deg) / 2)

    def object_px_per_row(
        self, object_class: ObjectClass, width: int, height: int, max_range_m: float, unseen_m: float
    ) -> np.ndarray:
        """Expected pixel size of the object on each row, for objects up to `max_range_m` away.

        Where the ray through a row never meets the object's height (at or above the horizon, or a camera
        mounted lower than the object), the distance is unknown and `unseen_m` stands in: the far limit
        when asking how small an object can get, the near limit when asking how big.
        """
        f = self.focal_px(width)
        rows = np.arange(height) + 0.5
        below_horizon = np.radians(self.tilt_deg) + np.arctan((rows - height / 2) / f)
        drop = self.height_m - OBJECT_HEIGHT_M[object_class]
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where((below_horizon > 0) & (drop > 0), drop / np.sin(below_horizon), unseen_m)
        distance = np.clip(distance, NEAREST_M, max_range_m)
        return f * OBJECT_SIZE_M[object_class] / distance

    def largest_object_px(self, object_class: ObjectClass, width: int, height: int) -> float:
        """The object's size where the camera sees it nearest."""
        return float(self.object_px_per_row(object_class, width, height, math.inf, NEAREST_M).max())

    def smallest_object_px(
        self, object_class: ObjectClass, width: int, height: int, max_range_m: float
    ) -> float:
        """The object's size where the camera sees it farthest (within `max_range_m`)."""
        return float(self.object_px_per_row(object_class, width, height, max_range_m, max_range_m).min())
