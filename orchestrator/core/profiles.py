"""Anonymization profiles: which classes to mask, how sensitively, how strongly, and how to fail.

Built-in profiles follow the zone a camera watches; custom profiles come from YAML and are validated
strictly (unknown keys and out-of-range numbers are errors, never silently ignored).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config_files import ConfigError, load_model_file
from .detections import ObjectClass
from .masks import MaskStyle

# Classes a detector exists for; profiles may mask only these.
MASKABLE_CLASSES = (ObjectClass.FACE, ObjectClass.PLATE)


class Zone(str, Enum):
    RESIDENTIAL = "residential"
    PUBLIC_SPACE = "public_space"
    TRAFFIC = "traffic"
    RESTRICTED = "restricted"
    CUSTOM = "custom"


class Strict(BaseModel):
    """Configuration models refuse unknown keys and never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


MIN_THRESHOLD = 0.05  # the lowest score threshold a profile may set


class ClassPolicy(Strict):
    """How one object class is handled."""

    threshold: float = Field(ge=MIN_THRESHOLD, le=0.95, description="detector score to accept an object")
    min_px: float = Field(ge=4, le=512, description="smallest object (short side, source px) to catch")
    margin: float = Field(ge=0.0, le=1.0, description="box growth per side, as a share of its size")
    strength: float = Field(ge=0.0, le=1.0, description="0 = lightest allowed mask, 1 = strongest")
    max_range_m: float = Field(
        default=40.0, gt=0, le=500, description="beyond this distance the object is not identifiable"
    )
    detect_every: int = Field(
        default=1, ge=1, le=30, description="run the detector every n-th frame; tracks carry the rest"
    )


class Profile(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    zone: Zone = Zone.CUSTOM
    description: str = ""
    style: MaskStyle = MaskStyle.BLUR
    classes: dict[str, ClassPolicy] = Field(min_length=1)
    holdover_s: float = Field(ge=0.0, le=10.0, description="keep masking a lost object this long")
    max_detect_interval: int = Field(
        default=1, ge=1, le=30, description="most frames between detections when shedding load"
    )
    on_failure: Literal["mask_whole", "drop"] = "mask_whole"
    crowd_saturation: int = Field(
        default=30, ge=1, le=10_000, description="faces per frame at which crowd adjustments are full"
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: dict[str, ClassPolicy]) -> dict[str, ClassPolicy]:
        for name in value:
            if ObjectClass.parse(name) not in MASKABLE_CLASSES:
                maskable = ", ".join(c.name.lower() for c in MASKABLE_CLASSES)
                raise ValueError(f"no detector masks {name!r} yet (maskable: {maskable})")
        return value

    def policy_for(self, object_class: ObjectClass) -> ClassPolicy | None:
        return self.classes.get(object_class.name.lower())

    @property
    def masked_classes(self) -> list[ObjectClass]:
        return [ObjectClass.parse(name) for name in self.classes]


def _builtin(name: str, zone: Zone, description: str, **fields: object) -> Profile:
    return Profile.model_validate({"name": name, "zone": zone, "description": description, **fields})


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        _builtin(
            "residential",
            Zone.RESIDENTIAL,
            "Homes in view: catch 10 px faces, strongest masks, long hold-over, never skip detections.",
            style="blur",
            classes={
                "face": {"threshold": 0.15, "min_px": 10, "margin": 0.3, "strength": 1.0},
                "plate": {"threshold": 0.4, "min_px": 10, "margin": 0.3, "strength": 1.0},
            },
            holdover_s=1.0,
            max_detect_interval=1,
        ),
        _builtin(
            "public_space",
            Zone.PUBLIC_SPACE,
            "Squares, streets and stations: faces from 20 px, plates from 24 px; tracks carry masks "
            "between detections.",
            style="blur",
            classes={
                "face": {"threshold": 0.2, "min_px": 20, "margin": 0.2, "strength": 0.8, "detect_every": 2},
                "plate": {"threshold": 0.5, "min_px": 24, "margin": 0.25, "strength": 0.8, "detect_every": 6},
            },
            holdover_s=0.5,
            max_detect_interval=3,
        ),
        _builtin(
            "traffic",
            Zone.TRAFFIC,
            "Traffic monitoring: plates first, faces from 24 px; keeps vehicles and motion readable.",
            style="pixelate",
            classes={
                "plate": {"threshold": 0.5, "min_px": 16, "margin": 0.25, "strength": 0.7, "detect_every": 2},
                "face": {"threshold": 0.3, "min_px": 24, "margin": 0.2, "strength": 0.7, "detect_every": 3},
            },
            holdover_s=0.5,
            max_detect_interval=4,
        ),
        _builtin(
            "restricted",
            Zone.RESTRICTED,
            "Sensitive sites: solid masks, 8 px faces, drop frames that could not be analysed.",
            style="solid",
            classes={
                "face": {"threshold": 0.15, "min_px": 8, "margin": 0.3, "strength": 1.0},
                "plate": {"threshold": 0.4, "min_px": 8, "margin": 0.3, "strength": 1.0},
            },
            holdover_s=2.0,
            max_detect_interval=1,
            on_failure="drop",
        ),
    ]
}
DEFAULT_PROFILE = "public_space"


class ProfileError(ConfigError):
    """A profile name or file that cannot be used; the message is one sentence for the user."""


def load_profile_file(path: Path) -> Profile:
    defaults = {"name": path.stem.lower().replace(" ", "_")}
    return load_model_file(path, Profile, "profile", defaults, ProfileError)


def resolve_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a custom one from a .yaml/.yml file."""
    if name_or_path in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name_or_path]
    if name_or_path.endswith((".yaml", ".yml")):
        return load_profile_file(Path(name_or_path))
    known = ", ".join(BUILTIN_PROFILES)
    raise ProfileError(f"unknown profile {name_or_path!r}: use one of {known} or a .yaml file")
