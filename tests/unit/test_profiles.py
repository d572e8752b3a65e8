"""Profiles: built-ins are valid, custom ones are strict, and names or files resolve with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.core.detections import ObjectClass
from orchestrator.core.masks import MaskStyle
from orchestrator.core.profiles import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    Profile,
    ProfileError,
    Zone,
    resolve_profile,
)

FACE = {"threshold": 0.3, "min_px": 16, "margin": 0.2, "strength": 0.9}


def profile_data(**overrides: object) -> dict:
    data: dict = {"name": "custom_one", "classes": {"face": dict(FACE)}, "holdover_s": 0.5}
    data.update(overrides)
    return data


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
def test_builtin_profiles_validate_and_mask_faces(name: str) -> None:
    profile = BUILTIN_PROFILES[name]
    assert Profile.model_validate(profile.model_dump()) == profile
    assert profile.name == name
    assert ObjectClass.FACE in profile.masked_classes


def test_the_default_profile_is_a_builtin() -> None:
    assert DEFAULT_PROFILE in BUILTIN_PROFILES


def test_restricted_drops_frames_and_residential_masks_them_whole() -> None:
    assert BUILTIN_PROFILES["restricted"].on_failure == "drop"
    assert BUILTIN_PROFILES["residential"].on_failure == "mask_whole"


def test_a_valid_custom_profile_parses() -> None:
    profile = Profile.model_validate(profile_data(style="pixelate"))
    assert profile.zone is Zone.CUSTOM
    assert profile.style is MaskStyle.PIXELATE
    assert profile.policy_for(ObjectClass.FACE).min_px == 16
    assert profile.policy_for(ObjectClass.PLATE) is None


def test_unknown_profile_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        Profile.model_validate(profile_data(colour="red"))


def test_unknown_class_policy_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="blur_radius"):
        Profile.model_validate(profile_data(classes={"face": {**FACE, "blur_radius": 3}}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", -0.1),
        ("threshold", 1.5),
        ("min_px", -4),
        ("min_px", 100_000),
        ("margin", -0.2),
        ("strength", 2.0),
        ("max_range_m", 0),
        ("detect_every", 0),
    ],
)
def test_out_of_range_class_numbers_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Profile.model_validate(profile_data(classes={"face": {**FACE, field: value}}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("holdover_s", -1.0), ("holdover_s", 60.0), ("max_detect_interval", 0), ("crowd_saturation", 0)],
)
def test_out_of_range_profile_numbers_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Profile.model_validate(profile_data(**{field: value}))


def test_unknown_class_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown object class 'tattoo'"):
        Profile.model_validate(profile_data(classes={"tattoo": dict(FACE)}))


def test_a_profile_must_mask_something() -> None:
    with pytest.raises(ValidationError, match="classes"):
        Profile.model_validate(profile_data(classes={}))


def test_unknown_failure_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="on_failure"):
        Profile.model_validate(profile_data(on_failure="publish_raw"))


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
def test_resolve_profile_by_name(name: str) -> None:
    assert resolve_profile(name) is BUILTIN_PROFILES[name]


def test_resolve_profile_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "night_market.yaml"
    path.write_text(
        "style: solid\nholdover_s: 1.5\n"
        "classes:\n  face: {threshold: 0.25, min_px: 12, margin: 0.3, strength: 1}\n",
        encoding="utf-8",
    )
    profile = resolve_profile(str(path))
    assert profile.name == "night_market"  # taken from the file name
    assert profile.style is MaskStyle.SOLID
    assert profile.holdover_s == 1.5
    assert profile.policy_for(ObjectClass.FACE).threshold == 0.25


def test_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'mall'.*residential"):
        resolve_profile("mall")


def test_missing_profile_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile file"):
        resolve_profile(str(tmp_path / "absent.yaml"))


def test_invalid_yaml_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("classes: {face: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid YAML"):
        resolve_profile(str(path))


def test_yaml_that_is_not_a_mapping_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- face\n- plate\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="mapping"):
        resolve_profile(str(path))


def test_invalid_values_in_a_file_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "holdover_s: 1\nclasses:\n  face: {threshold: 3, min_px: 12, margin: 0.3, strength: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match=r"classes\.face\.threshold"):
        resolve_profile(str(path))
