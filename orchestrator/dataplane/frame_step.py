"""The frame step shared by every engine: detections + policy -> masks, on a batch of one stream's frames.

Fail closed: if detection fails for any reason, the batch's frames are masked whole (or dropped, per the
profile) and the event is counted. A frame leaves this step masked or not at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from ..core.boxes import iou_matrix
from ..core.decoders import batched_nms
from ..core.detections import Detections, ObjectClass
from ..core.masks import SOLID_COLOUR, mask_boxes, mask_region, polygon_mask
from ..core.policy import CameraContext, FramePlan, SceneSignals, accept, decide_masks, plan_frame
from ..core.tracking import HoldoverTracker
from ..inference.detectors import Detector

log = structlog.get_logger(__name__)

CROWD_SMOOTHING = 0.2  # weight of the newest frame in the running faces-per-frame estimate
MERGE_IOU = 0.5  # detections of one object at the fine and the coarse scale merge above this overlap
SAME_OBJECT_IOU = 0.3  # a look-ahead detection overlapping a track this much is that track's object


@dataclass
class FrameResult:
    """One processed frame: `image` is None when the frame was dropped (fail closed)."""

    image: np.ndarray | None
    analysed: bool  # a detector ran on this frame (between detections, tracks carry the masks)
    failed: bool
    detections: dict[str, int]
    masks: dict[str, int]


@dataclass
class StreamStats:
    frames: int = 0
    analysed_frames: int = 0
    failed_frames: int = 0
    dropped_frames: int = 0
    detections: Counter[str] = field(default_factory=Counter)
    masks: Counter[str] = field(default_factory=Counter)
    # class -> parameter -> [lowest, highest] applied: crowds move thresholds and margins frame by frame
    parameter_ranges: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, result: FrameResult, plan: FramePlan) -> None:
        for object_class, class_plan in plan.classes.items():
            ranges = self.parameter_ranges.setdefault(object_class.name.lower(), {})
            for name in ("threshold", "margin", "inference_scale"):
                value = getattr(class_plan, name)
                low, high = ranges.get(name, [value, value])
                ranges[name] = [min(low, value), max(high, value)]
        self.frames += 1
        self.analysed_frames += result.analysed
        self.failed_frames += result.failed
        self.dropped_frames += result.image is None
        self.detections.update(result.detections)
        self.masks.update(result.masks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "analysed_frames": self.analysed_frames,
            "failed_frames": self.failed_frames,
            "dropped_frames": self.dropped_frames,
            "detections": dict(self.detections),
            "masks": dict(self.masks),
            "parameter_ranges": self.parameter_ranges,
        }


def _newcomers(later: list[Detections | None], tracked: Detections) -> Detections:
    """Look ahead: objects found on the next detected frame of this batch that no track covers yet.

    An object that appears between two detections would otherwise show until the next one.
    """
    upcoming = next((found for found in later if found is not None), None)
    if upcoming is None or len(upcoming) == 0:
        return Detections()
    if len(tracked) == 0:
        return upcoming
    return upcoming.select(iou_matrix(upcoming.boxes, tracked.boxes).max(axis=1) < SAME_OBJECT_IOU)


class StreamAnonymizer:
    """Per-stream state (tracker, crowd estimate, zone masks) around the shared frame step."""

    def __init__(
        self,
        context: CameraContext,
        detectors: dict[ObjectClass, Detector],
        pixel_budget: float = 0.0,
        detect_interval: int = 1,
        name: str = "",
    ) -> None:
        self.context = context
        self.detectors = {c: d for c, d in detectors.items() if c in context.profile.masked_classes}
        self.pixel_budget = pixel_budget
        self.detect_interval = detect_interval
        self.trackers = {c: HoldoverTracker() for c in self.detectors}
        self.signals = SceneSignals()
        self.stats = StreamStats()
        self._frame_number = 0
        self._zone_mask = self._zones(context)
        self.plan = self._plan()
        self.log = log.bind(stream=name, profile=context.profile.name, models=self.model_labels)

    @staticmethod
    def _zones(context: CameraContext) -> np.ndarray | None:
        if not context.privacy_zones:
            return None
        mask = np.zeros((context.height, context.width), dtype=bool)
        for polygon in context.privacy_zones:
            mask |= polygon_mask(np.asarray(polygon), context.width, context.height)
        return mask

    def _plan(self) -> FramePlan:
        return plan_frame(
            self.context,
            self.signals,
            {c: d.traits for c, d in self.detectors.items()},
            self.pixel_budget,
            self.detect_interval,
        )

    @property
    def model_labels(self) -> dict[str, str]:
        return {c.name.lower(): d.label for c, d in self.detectors.items()}

    def _detect(self, frames: list[np.ndarray], numbers: range) -> dict[ObjectClass, list[Detections | None]]:
        """Run each class's detector on the frames due for it; per class, one entry per frame (or None)."""
        found: dict[ObjectClass, list[Detections | None]] = {}
        for object_class, detector in self.detectors.items():
            class_plan = self.plan.classes[object_class]
            due = [i for i, n in enumerate(numbers) if n % class_plan.detect_interval == 0]
            per_frame: list[Detections | None] = [None] * len(frames)
            if due:
                selected = [frames[i] for i in due]
                batch = detector.detect(selected, class_plan.inference_scale, class_plan.threshold)
                if class_plan.coarse_scale is not None:
                    coarse = detector.detect(selected, class_plan.coarse_scale, class_plan.threshold)
                    batch = batched_nms(Detections.concat([batch, coarse]), MERGE_IOU)
                batch = accept(batch, self.plan)
                for j, i in enumerate(due):
                    per_frame[i] = batch.for_frame(j)
            found[object_class] = per_frame
        return found

    def process(self, frames: list[np.ndarray]) -> list[FrameResult]:
        """Anonymize a batch of consecutive frames of this stream (modified in place)."""
        numbers = range(self._frame_number, self._frame_number + len(frames))
        self._frame_number += len(frames)
        try:
            found = self._detect(frames, numbers)
        except Exception as exc:  # any failure of analysis: never let these frames out unmasked
            self.log.error("detection_failed", error=repr(exc), frames=len(frames))
            return [self._record(self._fail_closed(frame)) for frame in frames]
        results = []
        for i, frame in enumerate(frames):
            try:
                results.append(self._record(self._track_and_mask(frame, i, found)))
            except Exception as exc:  # a frame is published masked or not at all
                self.log.error("masking_failed", error=repr(exc))
                results.append(self._record(self._fail_closed(frame)))
        return results

    def _track_and_mask(
        self, frame: np.ndarray, i: int, found: dict[ObjectClass, list[Detections | None]]
    ) -> FrameResult:
        current, to_mask = [], []
        for object_class, per_frame in found.items():
            tracker = self.trackers[object_class]
            # A class detected every k-th frame keeps its tracks through the k-1 frames between.
            holdover = self.plan.holdover_frames + self.plan.classes[object_class].detect_interval - 1
            detections = per_frame[i]
            if detections is None:
                predicted = tracker.predict(holdover)
                to_mask += [predicted, _newcomers(per_frame[i + 1 :], predicted)]
            else:
                current.append(detections)
                to_mask.append(tracker.update(detections, holdover))
        faces = found[ObjectClass.FACE][i] if ObjectClass.FACE in found else None
        if faces is not None:
            self._observe(faces)
        return self._mask(frame, Detections.concat(to_mask), Detections.concat(current), bool(current))

    def _observe(self, faces_found: Detections) -> None:
        """Update the crowd estimate from a frame where faces were looked for, and re-plan."""
        faces = float(len(faces_found))
        recent = (1 - CROWD_SMOOTHING) * self.signals.recent_faces_per_frame + CROWD_SMOOTHING * faces
        self.signals = SceneSignals(recent_faces_per_frame=recent)
        self.plan = self._plan()

    def _mask(
        self, frame: np.ndarray, to_mask: Detections, current: Detections, analysed: bool
    ) -> FrameResult:
        h, w = frame.shape[:2]
        decisions = decide_masks(to_mask, self.plan, w, h)
        mask_boxes(frame, decisions.bounds, decisions.style, decisions.strengths, decisions.object_sides)
        if self._zone_mask is not None:
            mask_region(frame, self._zone_mask, self.plan.style, 1.0)
        return FrameResult(
            image=frame,
            analysed=analysed,
            failed=False,
            detections=current.counts_by_class(),
            masks=to_mask.counts_by_class(),
        )

    def _fail_closed(self, frame: np.ndarray) -> FrameResult:
        if self.plan.on_failure == "drop":
            return FrameResult(image=None, analysed=False, failed=True, detections={}, masks={})
        frame[...] = SOLID_COLOUR  # nothing that can fail: no detections, no styling
        return FrameResult(image=frame, analysed=False, failed=True, detections={}, masks={"frame": 1})

    def _record(self, result: FrameResult) -> FrameResult:
        self.stats.add(result, self.plan)
        return result
