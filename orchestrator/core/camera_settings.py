"""What an integrator says about a camera: its geometry and its static privacy zones.

The same fields as a camera entry in `cameras.yaml` and the REST registry; `cityveil anonymize --camera`
reads them for recorded footage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from .config_files import ConfigError, load_model_file
from .geometry import CameraGeometry
from .profiles import DEFAULT_PROFILE, Strict, Zone, resolve_profile

MAX_ZONES = 32
MAX_ZONE_POINTS = 256
ZONE_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Point = tuple[float, float]


class GeometrySettings(Strict):
    height_m: float = Field(gt=0, le=300, description="mounting height above the ground")
    tilt_deg: float = Field(ge=-45, le=90, description="pitch below the horizon")
    hfov_deg: float = Field(gt=1, le=180, description="horizontal field of view")

    def to_geometry(self) -> CameraGeometry:
        return CameraGeometry(self.height_m, self.tilt_deg, self.hfov_deg)


def _check_polygon(zone: list[Point], what: str) -> None:
    if not 3 <= len(zone) <= MAX_ZONE_POINTS:
        raise ValueError(f"{what} needs 3 to {MAX_ZONE_POINTS} points, has {len(zone)}")
    if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in zone):
        raise ValueError(f"{what} has a point outside 0..1 (coordinates are relative)")


class CameraSettings(Strict):
    geometry: GeometrySettings | None = None
    privacy_zones: list[list[tuple[float, float]]] = Field(
        default_factory=list, max_length=MAX_ZONES, description="polygons, relative coordinates"
    )
    count_zones: dict[str, list[tuple[float, float]]] = Field(
        default_factory=dict,
        max_length=MAX_ZONES,
        description="named polygons (relative coordinates) the metadata feed counts objects in",
    )

    @field_validator("privacy_zones")
    @classmethod
    def _zones_are_polygons(cls, zones: list[list[Point]]) -> list[list[Point]]:
        for number, zone in enumerate(zones, 1):
            _check_polygon(zone, f"privacy zone {number}")
        return zones

    @field_validator("count_zones")
    @classmethod
    def _count_zones_are_polygons(cls, zones: dict[str, list[Point]]) -> dict[str, list[Point]]:
        for name, zone in zones.items():
            if not ZONE_NAME.match(name):
                raise ValueError(f"count zone name {name[:40]!r} must be 1 to 64 letters, digits, _ or -")
            _check_polygon(zone, f"count zone {name!r}")
        return zones

    def zones(self) -> tuple[tuple[Point, ...], ...]:
        return tuple(tuple(zone) for zone in self.privacy_zones)


def load_camera_file(path: Path) -> CameraSettings:
    return load_model_file(path, CameraSettings, "camera")


PROFILE_NAME = re.compile(r"^[a-z0-9_\-]{1,64}$")
SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
MAX_CAMERAS = 256


class CameraConfig(CameraSettings):
    """A camera entry of `cameras.yaml` and of the REST registry (the same fields in both)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    source: str = Field(min_length=1, max_length=2048)
    loop: bool = False  # file:// sources only: replay like a live camera
    name: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200, description="address or site, free text")
    zone: Zone | None = Field(default=None, description="what the camera watches; picks the default profile")
    profile: str = DEFAULT_PROFILE

    @model_validator(mode="before")
    @classmethod
    def _profile_from_zone(cls, data: Any) -> Any:
        """A camera in a residential zone gets the residential profile unless another is named."""
        if isinstance(data, dict) and "profile" not in data and data.get("zone") not in (None, "custom"):
            return {**data, "profile": Zone(data["zone"]).value}
        return data

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, source: str) -> str:
        scheme = urlparse(source).scheme
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(f"source must be one of {', '.join(s + '://' for s in SOURCE_SCHEMES)}")
        return source

    @field_validator("profile")
    @classmethod
    def _profile_name(cls, profile: str) -> str:
        """A name (built-in, or stored through the REST API) or, in cameras.yaml only, a .yaml file.

        Whether it exists is checked where the known profiles are: the file loader and the registry."""
        if not (PROFILE_NAME.match(profile) or profile.endswith((".yaml", ".yml"))):
            raise ValueError("profile must be a profile name (lower case letters, digits, _ and -)")
        return profile


class CamerasFile(Strict):
    cameras: list[CameraConfig] = Field(min_length=1, max_length=MAX_CAMERAS)

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique: {', '.join(duplicates)}")
        return cameras


def load_cameras_file(path: Path) -> CamerasFile:
    """cameras.yaml, with every camera's profile resolved (built-in or a .yaml file)."""
    cameras = load_model_file(path, CamerasFile, "cameras")
    for camera in cameras.cameras:
        try:
            resolve_profile(camera.profile)
        except ConfigError as exc:
            raise ConfigError(f"cameras file {path}: camera {camera.id!r}: {exc}") from None
    return cameras
