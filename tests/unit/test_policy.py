"""The adaptive policy: inference scale, crowd adjustments, cadence, acceptance and mask decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.geometry import CameraGeometry
from orchestrator.core.policy import (
    LOWEST_THRESHOLD,
    MAX_UPSCALE,
    CameraContext,
    DetectorTraits,
    SceneSignals,
    accept,
    decide_masks,
    plan_frame,
)
from orchestrator.core.profiles import BUILTIN_PROFILES, MIN_THRESHOLD, Profile

FACE, PLATE = ObjectClass.FACE, ObjectClass.PLATE
W, H = 1920, 1080

PROFILE = Profile.model_validate(
    {
        "name": "test_street",
        "style": "pixelate",
        "classes": {
            "face": {"threshold": 0.4, "min_px": 20, "margin": 0.2, "strength": 0.8, "detect_every": 2},
            "plate": {"threshold": 0.6, "min_px": 24, "margin": 0.1, "strength": 0.5, "detect_every": 1},
        },
        "holdover_s": 0.5,
        "max_detect_interval": 3,
        "crowd_saturation": 30,
    }
)
TRAITS = {FACE: DetectorTraits(reliable_min_px=10, box_slack=8), PLATE: DetectorTraits(12, 2)}


def context(geometry: CameraGeometry | None = None, profile: Profile = PROFILE) -> CameraContext:
    return CameraContext(profile=profile, width=W, height=H, fps=25.0, geometry=geometry)


def plan(geometry=None, faces_per_frame=0.0, traits=TRAITS, pixel_budget=0.0, detect_interval=1):
    return plan_frame(context(geometry), SceneSignals(faces_per_frame), traits, pixel_budget, detect_interval)


def test_inference_scale_brings_the_smallest_object_to_the_reliable_size() -> None:
    p = plan()
    assert p.classes[FACE].target_px == 20
    assert p.classes[FACE].inference_scale == pytest.approx(10 / 20)
    assert p.classes[PLATE].inference_scale == pytest.approx(12 / 24)


def test_a_detector_that_needs_bigger_objects_gets_an_upscaled_input() -> None:
    p = plan(traits={FACE: DetectorTraits(30, 8), PLATE: DetectorTraits(12, 2)})
    assert p.classes[FACE].inference_scale == pytest.approx(1.5)


def test_upscaling_is_capped() -> None:
    p = plan(traits={FACE: DetectorTraits(200, 8), PLATE: DetectorTraits(12, 2)})
    assert p.classes[FACE].inference_scale == MAX_UPSCALE


def test_slack_is_the_detector_uncertainty_in_source_pixels() -> None:
    p = plan()
    assert p.classes[FACE].slack_px == pytest.approx(8 / 0.5)
    assert p.classes[PLATE].slack_px == pytest.approx(2 / 0.5)


def test_geometry_raises_the_target_when_small_faces_cannot_appear() -> None:
    steep_and_low = CameraGeometry(height_m=4.0, tilt_deg=60, hfov_deg=60)
    expected = steep_and_low.smallest_object_px(FACE, W, H, PROFILE.policy_for(FACE).max_range_m)
    assert expected > 20  # the premise: nothing as small as min_px is in view

    p = plan(geometry=steep_and_low)

    assert p.classes[FACE].target_px == pytest.approx(expected, abs=0.01)
    assert p.classes[FACE].inference_scale == pytest.approx(10 / expected, abs=1e-3)
    assert p.classes[FACE].inference_scale < plan().classes[FACE].inference_scale


def test_geometry_never_lowers_the_target_below_min_px() -> None:
    far_view = CameraGeometry(height_m=10.0, tilt_deg=0, hfov_deg=90)  # half the rows see max range
    p = plan(geometry=far_view)
    assert p.classes[FACE].target_px == 20


def test_pixel_budget_raises_the_scale() -> None:
    p = plan(pixel_budget=1.5**2 * W * H)
    assert p.classes[FACE].inference_scale == pytest.approx(1.5)
    assert plan(pixel_budget=0.1 * W * H).classes[FACE].inference_scale == pytest.approx(0.5)


def test_pixel_budget_never_scales_above_the_cap() -> None:
    p = plan(pixel_budget=100 * W * H)
    assert p.classes[FACE].inference_scale == MAX_UPSCALE
    assert p.classes[PLATE].inference_scale == MAX_UPSCALE


def test_a_saturated_crowd_lowers_thresholds_and_grows_margins() -> None:
    calm, crowd = plan(faces_per_frame=0), plan(faces_per_frame=30)
    assert calm.crowd_factor == 0 and crowd.crowd_factor == 1
    assert calm.classes[FACE].threshold == pytest.approx(0.4)
    assert crowd.classes[FACE].threshold == pytest.approx(0.4 * 0.75)
    assert crowd.classes[FACE].margin == pytest.approx(0.2 * 1.5)
    assert crowd.classes[PLATE].threshold < calm.classes[PLATE].threshold


def test_a_fixed_inference_scale_is_what_the_plan_states_and_sizes_slack_by() -> None:
    """DeepStream's ensemble runs at one scale: plans (and the reports built from them) must say so."""
    fixed = {
        c: DetectorTraits(t.reliable_min_px, t.box_slack, reliable_max_px=100, fixed_scale=1.0)
        for c, t in TRAITS.items()
    }
    chosen = plan(
        traits={
            c: DetectorTraits(t.reliable_min_px, t.box_slack, reliable_max_px=100) for c, t in TRAITS.items()
        }
    )
    stated = plan(traits=fixed)
    assert chosen.classes[FACE].inference_scale != 1.0 and chosen.classes[FACE].coarse_scale is not None
    assert stated.classes[FACE].inference_scale == 1.0 and stated.classes[FACE].coarse_scale is None
    assert stated.classes[FACE].slack_px == TRAITS[FACE].box_slack  # network pixels at scale 1


def test_no_plan_thresholds_below_the_lowest_threshold_detectors_report_to() -> None:
    """Callers that threshold after the detector (the DeepStream probe) get objects down to it."""
    lowest = PROFILE.model_copy(
        update={"classes": {"face": PROFILE.classes["face"].model_copy(update={"threshold": MIN_THRESHOLD})}}
    )
    thresholds = [
        class_plan.threshold
        for profile in [*BUILTIN_PROFILES.values(), lowest]
        for faces in (0.0, 1000.0)
        for class_plan in plan_frame(context(profile=profile), SceneSignals(faces), TRAITS).classes.values()
    ]
    assert min(thresholds) == LOWEST_THRESHOLD


def test_crowd_adjustments_grow_with_density_and_stop_at_saturation() -> None:
    half, full, beyond = plan(faces_per_frame=15), plan(faces_per_frame=30), plan(faces_per_frame=300)
    assert half.crowd_factor == pytest.approx(0.5)
    assert full.classes[FACE].threshold < half.classes[FACE].threshold < 0.4
    assert beyond.classes[FACE] == full.classes[FACE]


@pytest.mark.parametrize("requested", [1, 2, 3, 5, 30])
def test_detect_interval_respects_class_cadence_and_profile_cap(requested: int) -> None:
    p = plan(detect_interval=requested)
    assert p.classes[FACE].detect_interval == max(2, min(requested, 3))
    assert p.classes[PLATE].detect_interval == max(1, min(requested, 3))


def test_every_plan_carries_its_parameters() -> None:
    p = plan(faces_per_frame=30)
    params = p.parameters
    assert params["profile"] == "test_street"
    assert params["style"] == "pixelate"
    assert params["holdover_frames"] == p.holdover_frames == math.ceil(0.5 * 25)
    assert params["crowd_factor"] == 1.0
    assert set(params["classes"]) == {"face", "plate"}
    assert params["classes"]["face"]["threshold"] == p.classes[FACE].threshold
    assert params["classes"]["plate"]["inference_scale"] == p.classes[PLATE].inference_scale


def test_accept_applies_each_class_threshold() -> None:
    p = plan()  # face 0.4, plate 0.6, person not masked
    box = np.array([[0, 0, 10, 10]] * 2, np.float32)
    det = Detections.concat(
        [
            Detections.build(box, [0.39, 0.41], FACE),
            Detections.build(box, [0.5, 0.7], PLATE),
            Detections.build(box, [0.99, 0.99], ObjectClass.PERSON),
        ]
    )
    kept = accept(det, p)
    assert kept.classes.tolist() == [FACE, PLATE]
    np.testing.assert_allclose(kept.scores, [0.41, 0.7], rtol=1e-6)


def test_decide_masks_grows_by_margin_and_slack() -> None:
    p = plan()  # face: margin 0.2, slack 16; plate: margin 0.1, slack 4
    det = Detections.concat(
        [
            Detections.build(np.array([[100, 100, 140, 150]]), [0.9], FACE),
            Detections.build(np.array([[500, 500, 600, 520]]), [0.9], PLATE),
        ]
    )
    decisions = decide_masks(det, p, W, H)
    assert decisions.bounds.tolist() == [
        [100 - 8 - 16, 100 - 10 - 16, 140 + 8 + 16, 150 + 10 + 16],
        [500 - 10 - 4, 500 - 2 - 4, 600 + 10 + 4, 520 + 2 + 4],
    ]
    np.testing.assert_allclose(decisions.strengths, [0.8, 0.5])
    np.testing.assert_allclose(decisions.object_sides, [40 + 16 + 32, 20 + 4 + 8])
    assert decisions.style.value == "pixelate"


def test_an_object_cut_by_the_frame_edge_keeps_its_whole_size_for_the_mask() -> None:
    det = Detections.build(np.array([[-260, 100, 40, 400]]), [0.9], FACE)  # 300 px face, 40 px visible
    decisions = decide_masks(det, plan(), W, H)
    assert decisions.bounds[0, 0] == 0
    assert decisions.object_sides[0] > 300


def test_decide_masks_clips_to_the_frame_and_handles_nothing() -> None:
    p = plan()
    edge = Detections.build(np.array([[0, 0, 30, 30]]), [0.9], FACE)
    assert decide_masks(edge, p, W, H).bounds[0, :2].tolist() == [0, 0]
    assert decide_masks(Detections(), p, W, H).bounds.shape == (0, 4)
