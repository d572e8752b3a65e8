"""The frame step shared by every engine: detections + policy -> masks, on a batch of one stream's frames.

A frame is an HxWx3 RGB array (NumPy, or CuPy on a GPU), or a `Yuv420Frame` as batch video decodes it.

Fail closed: if detection fails for any reason, the batch's frames are masked whole (or dropped, per the
profile) and the event is counted. A frame leaves this step masked or not at all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import structlog

from ..core.boxes import iou_matrix
from ..core.decoders import batched_nms
from ..core.detections import Detections, ObjectClass
from ..core.masks import SOLID_COLOUR, mask_boxes, mask_region, polygon_mask
from ..core.policy import (
    CameraContext,
    FramePlan,
    MaskDecisions,
    ParameterRanges,
    SceneSignals,
    accept,
    decide_masks,
    plan_frame,
    widen_ranges,
)
from ..core.tracking import HoldoverTracker
from ..core.xp import array_module
from ..core.yuv import Frame, Yuv420Frame
from ..inference.detectors import AsyncDetector, Detector

log = structlog.get_logger(__name__)

CROWD_SMOOTHING = 0.2  # weight of the newest frame in the running faces-per-frame estimate
MERGE_IOU = 0.5  # detections of one object at the fine and the coarse scale merge above this overlap
SAME_OBJECT_IOU = 0.3  # a look-ahead detection overlapping a track this much is that track's object


@dataclass
class FrameResult:
    """One processed frame: `image` is None when the frame was dropped (fail closed)."""

    image: Any  # the frame as it came in (a Frame, or a CuPy array), masked; None when dropped
    analysed: bool  # a detector ran on this frame (between detections, tracks carry the masks)
    failed: bool
    detections: dict[str, int]
    masks: dict[str, int]
    tracked: Detections = field(default_factory=Detections)  # masked objects with their track ids


@dataclass
class StreamStats:
    frames: int = 0
    analysed_frames: int = 0
    failed_frames: int = 0
    dropped_frames: int = 0
    detections: Counter[str] = field(default_factory=Counter)
    masks: Counter[str] = field(default_factory=Counter)
    # Crowds move thresholds and margins frame by frame: the range each took.
    parameter_ranges: ParameterRanges = field(default_factory=dict)

    def add(self, result: FrameResult, plan: FramePlan) -> None:
        applied = {
            object_class.name.lower(): {
                name: [getattr(class_plan, name)] * 2 for name in ("threshold", "margin", "inference_scale")
            }
            for object_class, class_plan in plan.classes.items()
        }
        widen_ranges(self.parameter_ranges, applied)
        self.frames += 1
        self.analysed_frames += result.analysed
        self.failed_frames += result.failed
        self.dropped_frames += result.image is None
        self.detections.update(result.detections)
        self.masks.update(result.masks)

    def merge(self, other: StreamStats) -> None:
        """Fold in the counts of a later period (telemetry collects a stream's stats piece by piece)."""
        self.frames += other.frames
        self.analysed_frames += other.analysed_frames
        self.failed_frames += other.failed_frames
        self.dropped_frames += other.dropped_frames
        self.detections.update(other.detections)
        self.masks.update(other.masks)
        widen_ranges(self.parameter_ranges, other.parameter_ranges)

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


# Per object class, per frame of a batch: the detections of each pass (fine, and coarse where planned).
Found = dict[ObjectClass, list[list[Detections]]]
# Paints a frame's box decisions. The default masks at once; the DeepStream probe collects the decisions of
# a whole batch and masks them in one pass of GPU kernels.
Painter = Callable[[Any, MaskDecisions], None]


def paint_now(frame: Any, decisions: MaskDecisions) -> None:
    paint = frame.mask_boxes if isinstance(frame, Yuv420Frame) else partial(mask_boxes, frame)
    paint(decisions.bounds, decisions.style, decisions.strengths, decisions.object_sides)


@dataclass(frozen=True)
class DetectionRequest:
    """One detector pass a stream needs: its frames `frames` (batch indices), at `scale`."""

    stream: StreamAnonymizer
    object_class: ObjectClass
    detector: Detector
    frames: tuple[int, ...]
    scale: float
    threshold: float


def process_streams(batches: Sequence[tuple[StreamAnonymizer, Sequence[Frame]]]) -> list[list[FrameResult]]:
    """The frame step over several streams at once: frames of every stream that need the same detector at
    the same scale and size go through one inference call (nvstreammux-style batching across cameras).

    A failed call fails closed every stream that had frames in it; the other streams go on.
    """
    groups: dict[tuple[int, float, tuple[int, ...]], list[tuple[int, DetectionRequest]]] = defaultdict(list)
    for k, (stream, frames) in enumerate(batches):
        for request in stream.detection_requests(len(frames)):
            groups[(id(request.detector), request.scale, frames[0].shape)].append((k, request))
    found: list[Found] = [{} for _ in batches]
    failed: set[int] = set()
    answers = [(members, _launch(batches, members)) for members in groups.values()]
    for members, answer in answers:
        first = members[0][1]
        try:
            result = answer()
        except Exception as exc:  # any failure of analysis: never let these frames out unmasked
            log.error("batch_detection_failed", error=repr(exc), detector=first.detector.label)
            failed.update(k for k, _ in members)
            continue
        position = 0
        for k, request in members:
            per_frame = found[k].setdefault(request.object_class, [[] for _ in batches[k][1]])
            for i in request.frames:
                per_frame[i].append(result.for_frame(position).renumbered(0))
                position += 1
    return [
        stream.complete(frames, None if k in failed else found[k])
        for k, (stream, frames) in enumerate(batches)
    ]


def _launch(
    batches: Sequence[tuple[StreamAnonymizer, Sequence[Frame]]], members: list[tuple[int, DetectionRequest]]
) -> Callable[[], Detections]:
    """One group's inference: sent at once where the detector can have requests in flight (Triton, and the
    embedded detectors, each on its own thread: every group is out before the first answer is awaited),
    else run when its answer is asked for."""
    images = [batches[k][1][i] for k, request in members for i in request.frames]
    first = members[0][1]
    threshold = min(r.threshold for _, r in members)
    if not isinstance(first.detector, AsyncDetector):
        return partial(first.detector.detect, images, first.scale, threshold)
    try:
        return first.detector.submit(images, first.scale, threshold)
    except Exception as exc:  # not sent: its answer is this failure, which fails the frames closed
        return partial(_raise, exc)


def _raise(exc: Exception) -> Detections:
    raise exc


class StreamAnonymizer:
    """Per-stream state (tracker, crowd estimate, zone masks) around the shared frame step."""

    def __init__(
        self,
        context: CameraContext,
        detectors: dict[ObjectClass, Detector],
        pixel_budget: float = 0.0,
        detect_interval: int = 1,
        name: str = "",
        painter: Painter = paint_now,
    ) -> None:
        self.context = context
        self.painter = painter
        self.detectors = {c: d for c, d in detectors.items() if c in context.profile.masked_classes}
        self.pixel_budget = pixel_budget
        self.detect_interval = detect_interval
        self.trackers = {c: HoldoverTracker() for c in self.detectors}
        self._blind: set[ObjectClass] = set()  # classes whose last analysis failed
        self.signals = SceneSignals()
        self.stats = StreamStats()
        self._frame_number = 0
        self._zone_mask = self._zones(context)
        self._zone_mask_on: dict[Any, Any] = {}  # array module -> the zone mask there (a GPU gets it once)
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

    def shed_load(self, interval: int) -> None:
        """Detect at most every `interval` frames (capped by the profile), tracks carrying the rest."""
        if interval != self.detect_interval:
            self.detect_interval = interval
            self.plan = self._plan()

    @property
    def model_labels(self) -> dict[str, str]:
        return {c.name.lower(): d.label for c, d in self.detectors.items()}

    def detection_requests(self, count: int) -> list[DetectionRequest]:
        """Advance the stream by `count` frames: which of them each class's detector must look at, how."""
        numbers = range(self._frame_number, self._frame_number + count)
        self._frame_number += count
        requests = []
        for object_class, detector in self.detectors.items():
            class_plan = self.plan.classes[object_class]
            due = tuple(i for i, n in enumerate(numbers) if n % class_plan.detect_interval == 0)
            for scale in (class_plan.inference_scale, class_plan.coarse_scale):
                if due and scale is not None:
                    requests.append(
                        DetectionRequest(self, object_class, detector, due, scale, class_plan.threshold)
                    )
        return requests

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Anonymize a batch of consecutive frames of this stream (modified in place)."""
        return process_streams([(self, frames)])[0]

    def complete(self, frames: Sequence[Frame], found: Found | None) -> list[FrameResult]:
        """Track and mask frames whose detections are in (`found` None: analysis failed, fail closed)."""
        if found is None:
            self.log.error("detection_failed", frames=len(frames))
            self._blind = set(self.detectors)
            return [self._record(self._fail_closed(frame)) for frame in frames]
        per_class = {c: self._merged(found.get(c), len(frames)) for c in self.detectors}
        results = []
        for i, frame in enumerate(frames):
            # After a failed analysis, tracks are stale: frames stay fully masked until each class has
            # been looked for again, even frames between detections.
            self._blind -= {c for c, per_frame in per_class.items() if per_frame[i] is not None}
            if self._blind:
                results.append(self._record(self._fail_closed(frame)))
                continue
            try:
                results.append(self._record(self._track_and_mask(frame, i, per_class)))
            except Exception as exc:  # a frame is published masked or not at all
                self.log.error("masking_failed", error=repr(exc))
                results.append(self._record(self._fail_closed(frame)))
        return results

    def _merged(self, parts: list[list[Detections]] | None, count: int) -> list[Detections | None]:
        """Per frame: None where the class was not looked for, else its passes merged and thresholded."""
        merged: list[Detections | None] = []
        for i in range(count):
            passes = parts[i] if parts is not None else []
            if not passes:
                merged.append(None)
                continue
            both = passes[0] if len(passes) == 1 else batched_nms(Detections.concat(passes), MERGE_IOU)
            merged.append(accept(both, self.plan))
        return merged

    def _track_and_mask(
        self, frame: Frame, i: int, found: dict[ObjectClass, list[Detections | None]]
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

    def _mask(self, frame: Frame, to_mask: Detections, current: Detections, analysed: bool) -> FrameResult:
        h, w = frame.shape[:2]
        self.painter(frame, decide_masks(to_mask, self.plan, w, h))
        if self._zone_mask is not None:
            if isinstance(frame, Yuv420Frame):
                frame.mask_region(self._zone_mask, self.plan.style, 1.0)
            else:
                xp = array_module(frame)
                if xp not in self._zone_mask_on:
                    self._zone_mask_on[xp] = xp.asarray(self._zone_mask)
                mask_region(frame, self._zone_mask_on[xp], self.plan.style, 1.0)
        return FrameResult(
            image=frame,
            analysed=analysed,
            failed=False,
            detections=current.counts_by_class(),
            masks=to_mask.counts_by_class(),
            tracked=to_mask.select(to_mask.track_ids >= 0),
        )

    def _fail_closed(self, frame: Frame) -> FrameResult:
        if self.plan.on_failure == "drop":
            return FrameResult(image=None, analysed=False, failed=True, detections={}, masks={})
        # Nothing that can fail: no detections, no styling. The frame may be a GPU surface (DeepStream).
        if isinstance(frame, Yuv420Frame):
            frame.fill_solid()
        else:
            xp = array_module(frame)
            frame[...] = xp.asarray(SOLID_COLOUR, dtype=xp.uint8)
        return FrameResult(image=frame, analysed=False, failed=True, detections={}, masks={"frame": 1})

    def _record(self, result: FrameResult) -> FrameResult:
        self.stats.add(result, self.plan)
        return result
