"""The adaptive policy: (camera context, scene signals, detections) -> what to mask and how strongly.

Pure functions. Every decision carries the parameters that produced it, so reports and the audit trail
can show exactly what was applied to a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .boxes import grow, to_pixel_bounds
from .detections import Detections, ObjectClass
from .geometry import CameraGeometry
from .masks import MaskStyle
from .profiles import MIN_THRESHOLD, Profile

MAX_UPSCALE = 2.0  # beyond 2x, upsampling invents no detail a detector could use
MIN_SCALE = 0.1
# Crowds: at saturation, thresholds drop by this share and margins grow by this share.
CROWD_THRESHOLD_DROP = 0.25
# The lowest threshold any plan can set: a detector whose caller thresholds per camera afterwards (the
# DeepStream probe, behind nvinferserver) must report every object down to it.
LOWEST_THRESHOLD = round(MIN_THRESHOLD * (1 - CROWD_THRESHOLD_DROP), 4)  # as plans round theirs
CROWD_MARGIN_GROWTH = 0.5


@dataclass(frozen=True)
class CameraContext:
    """What is known of a camera before any frame arrives."""

    profile: Profile
    width: int
    height: int
    fps: float = 25.0
    geometry: CameraGeometry | None = None
    privacy_zones: tuple[tuple[tuple[float, float], ...], ...] = ()


@dataclass(frozen=True)
class SceneSignals:
    """What recent frames showed: the crowd around the camera right now."""

    recent_faces_per_frame: float = 0.0


@dataclass(frozen=True)
class DetectorTraits:
    """What the policy must know of a detector to plan for it."""

    reliable_min_px: float  # smallest object (network-input pixels) it finds reliably
    box_slack: float  # its localisation uncertainty per side, network-input pixels
    reliable_max_px: float = math.inf  # largest object it still boxes whole (network-input pixels)
    # An inference scale the caller cannot choose (DeepStream's nvinferserver sends the ensemble no scale):
    # the plan then states that scale, and the slack it implies, instead of the one it would choose.
    fixed_scale: float | None = None


@dataclass(frozen=True)
class ClassPlan:
    threshold: float
    margin: float
    strength: float
    target_px: float  # the smallest object this frame must catch (source pixels)
    inference_scale: float  # network input / source size
    coarse_scale: float | None  # a second, smaller scale for objects too big for the first, if any
    detect_interval: int  # frames between detections of this class
    slack_px: float  # added to every side: the detector's localisation uncertainty in source pixels


@dataclass(frozen=True)
class FramePlan:
    style: MaskStyle
    classes: dict[ObjectClass, ClassPlan]
    holdover_frames: int
    crowd_factor: float
    on_failure: str
    parameters: dict[str, Any] = field(default_factory=dict)


def plan_frame(
    context: CameraContext,
    signals: SceneSignals,
    detectors: dict[ObjectClass, DetectorTraits],
    pixel_budget: float = 0.0,
    detect_interval: int = 1,
) -> FramePlan:
    """Per-frame settings for every masked class.

    The inference scale is the smallest that lets the detector (reliable from `reliable_min_px` network
    pixels) see the smallest object that matters: the profile's `min_px`, or, when the camera's geometry
    says nothing that small can appear, the smallest object the geometry predicts. A `pixel_budget` (network
    pixels per frame) lets batch work spend spare compute on catching still smaller objects. Where that
    scale would make the biggest possible object larger than the detector handles (`reliable_max_px`), a
    second, coarse pass at a smaller scale catches it.
    `detect_interval` is the cadence asked for under load, capped by the profile's `max_detect_interval`;
    a class never runs more often than its own `detect_every`.
    """
    profile = context.profile
    crowd = min(1.0, signals.recent_faces_per_frame / profile.crowd_saturation)
    budget_scale = math.sqrt(pixel_budget / (context.width * context.height)) if pixel_budget else 0.0
    load_interval = max(1, min(detect_interval, profile.max_detect_interval))
    classes: dict[ObjectClass, ClassPlan] = {}
    for object_class in profile.masked_classes:
        policy = profile.policy_for(object_class)
        assert policy is not None
        target = policy.min_px
        if context.geometry is not None and object_class in (ObjectClass.FACE, ObjectClass.PLATE):
            expected = context.geometry.smallest_object_px(
                object_class, context.width, context.height, policy.max_range_m
            )
            target = max(target, expected)
        traits = detectors.get(object_class, DetectorTraits(reliable_min_px=target, box_slack=1.0))
        scale = traits.reliable_min_px / target
        scale = min(MAX_UPSCALE, max(MIN_SCALE, scale, budget_scale))
        # The biggest object: nearly the frame's short side, or what the geometry allows at the bottom row.
        largest = float(min(context.width, context.height))
        if context.geometry is not None and object_class in (ObjectClass.FACE, ObjectClass.PLATE):
            largest = min(
                largest, context.geometry.largest_object_px(object_class, context.width, context.height)
            )
        coarse = traits.reliable_max_px / largest if largest * scale > traits.reliable_max_px else None
        if traits.fixed_scale is not None:  # what the caller cannot choose: one pass at its scale
            scale, coarse = traits.fixed_scale, None
        classes[object_class] = ClassPlan(
            threshold=round(policy.threshold * (1 - CROWD_THRESHOLD_DROP * crowd), 4),
            margin=round(policy.margin * (1 + CROWD_MARGIN_GROWTH * crowd), 4),
            strength=policy.strength,
            target_px=round(target, 2),
            inference_scale=round(scale, 4),
            coarse_scale=round(coarse, 4) if coarse is not None else None,
            detect_interval=max(policy.detect_every, load_interval),
            slack_px=round(traits.box_slack / scale, 2),
        )
    holdover = math.ceil(profile.holdover_s * context.fps)
    parameters = {
        "profile": profile.name,
        "style": profile.style.value,
        "crowd_factor": round(crowd, 3),
        "holdover_frames": holdover,
        "classes": {c.name.lower(): vars(p) for c, p in classes.items()},
    }
    return FramePlan(
        style=profile.style,
        classes=classes,
        holdover_frames=holdover,
        crowd_factor=crowd,
        on_failure=profile.on_failure,
        parameters=parameters,
    )


@dataclass(frozen=True)
class MaskDecisions:
    """Per-object decisions for one frame: pixel bounds to mask, strength, and each object's whole size."""

    bounds: np.ndarray  # [N,4] int64, clipped to the frame
    strengths: np.ndarray  # [N] float32
    object_sides: np.ndarray  # [N] short side of the grown box before clipping: sets the mask's coarseness
    style: MaskStyle


def accept(detections: Detections, plan: FramePlan) -> Detections:
    """Keep detections of masked classes whose score meets this frame's threshold."""
    thresholds = np.full(ObjectClass.TEXT + 1, np.inf, dtype=np.float32)
    for object_class, class_plan in plan.classes.items():
        thresholds[object_class] = class_plan.threshold
    return detections.select(detections.scores >= thresholds[detections.classes])


def decide_masks(detections: Detections, plan: FramePlan, width: int, height: int) -> MaskDecisions:
    """Grow each object by its class margin and slack, and fix its mask strength (one frame's detections)."""
    margins = np.zeros(ObjectClass.TEXT + 1, dtype=np.float32)
    slack = np.zeros(ObjectClass.TEXT + 1, dtype=np.float32)
    strengths = np.ones(ObjectClass.TEXT + 1, dtype=np.float32)
    for object_class, class_plan in plan.classes.items():
        margins[object_class] = class_plan.margin
        slack[object_class] = class_plan.slack_px
        strengths[object_class] = class_plan.strength
    grown = grow(detections.boxes, margins[detections.classes], slack[detections.classes])
    return MaskDecisions(
        bounds=to_pixel_bounds(grown, width, height),
        strengths=strengths[detections.classes],
        object_sides=np.minimum(grown[:, 2] - grown[:, 0], grown[:, 3] - grown[:, 1]),
        style=plan.style,
    )


ParameterRanges = dict[str, dict[str, list[float]]]  # class -> parameter -> [lowest, highest] applied


def widen_ranges(into: ParameterRanges, ranges: ParameterRanges) -> None:
    """Fold the parameter ranges of another period (or frame) into `into`."""
    for name, parameters in ranges.items():
        mine = into.setdefault(name, {})
        for parameter, (low, high) in parameters.items():
            old_low, old_high = mine.get(parameter, [low, high])
            mine[parameter] = [min(old_low, low), max(old_high, high)]
