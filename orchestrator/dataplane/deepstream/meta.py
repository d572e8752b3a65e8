"""DeepStream's batch metadata as Python iterators, and the conversions between it and our Detections.

pyds exposes metadata as GLib linked lists (`.data`, `.next`). One generator walks them all, so no probe
carries its own list-walking loop, with the off-by-one and forgotten-`next` bugs those loops breed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...core.boxes import iou_matrix
from ...core.detections import Detections
from ..frame_step import SAME_OBJECT_IOU

UNTRACKED_OBJECT_ID = 0xFFFFFFFFFFFFFFFF  # DeepStream's object_id before the tracker assigns one
DETECTOR_COMPONENT_ID = 1  # nvinferserver's unique_id in deepstream_configs: objects it is said to find
# nvtracker reports an object it carries through a frame without a detection with confidence -0.1. It was
# accepted by the policy when detected (the detection probe drops what the policy rejects), so it is kept.
TRACKED_SCORE = 1.0


def each(glist: Any, cast: Callable[[Any], Any]) -> Iterator[Any]:
    """The items of a pyds GList, cast to their metadata type."""
    while glist is not None:
        yield cast(glist.data)
        glist = glist.next


def frames(pyds: Any, batch_meta: Any) -> Iterator[Any]:
    return each(batch_meta.frame_meta_list, pyds.NvDsFrameMeta.cast)


def objects(pyds: Any, frame_meta: Any) -> Iterator[Any]:
    return each(frame_meta.obj_meta_list, pyds.NvDsObjectMeta.cast)


def tensor_output(pyds: Any, frame_meta: Any, layer_name: str) -> np.ndarray | None:
    """A frame's output tensor `layer_name` from nvinferserver's tensor meta (a host copy), if attached."""
    for user_meta in each(frame_meta.frame_user_meta_list, pyds.NvDsUserMeta.cast):
        if user_meta.base_meta.meta_type != pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META:
            continue
        tensor_meta = pyds.NvDsInferTensorMeta.cast(user_meta.user_meta_data)
        for i in range(tensor_meta.num_output_layers):
            layer = pyds.get_nvds_LayerInfo(tensor_meta, i)
            if layer.layerName == layer_name:
                count = layer.inferDims.numElements
                if count == 0:  # nothing to read, and the buffer pointer may be NULL
                    return np.empty(0, np.float32)
                pointer = ctypes.cast(pyds.get_ptr(layer.buffer), ctypes.POINTER(ctypes.c_float))
                return np.ctypeslib.as_array(pointer, shape=(count,)).copy()
    return None


def add_detections(pyds: Any, batch_meta: Any, frame_meta: Any, detections: Detections) -> None:
    """Attach one frame's detections as object meta, for nvtracker and then the masking probe.

    nvinferserver fills in these fields for the detections it parses itself; here the probe parses them, so
    it must too: nvtracker takes a frame's objects as new detections only where `bInferDone` is set, and
    reads the detector's own box from `detector_bbox_info`.
    """
    frame_meta.bInferDone = True  # also with no object: the detector looked, and found nothing
    for (x1, y1, x2, y2), score, object_class in zip(
        detections.boxes.tolist(), detections.scores.tolist(), detections.classes.tolist(), strict=True
    ):
        obj = pyds.nvds_acquire_obj_meta_from_pool(batch_meta)
        obj.unique_component_id = DETECTOR_COMPONENT_ID
        obj.object_id = UNTRACKED_OBJECT_ID
        obj.class_id = object_class
        obj.confidence = score
        for rect in (obj.rect_params, obj.detector_bbox_info.org_bbox_coords):
            rect.left, rect.top, rect.width, rect.height = x1, y1, x2 - x1, y2 - y1
        pyds.nvds_add_obj_meta_to_frame(frame_meta, obj, None)


def frame_detections(pyds: Any, frame_meta: Any) -> Detections:
    """The objects on a frame after nvtracker (its ids as track ids), as the frame step's Detections."""
    found = [
        (o.rect_params.left, o.rect_params.top, o.rect_params.width, o.rect_params.height, o)
        for o in objects(pyds, frame_meta)
    ]
    if not found:
        return Detections()
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h, _ in found], dtype=np.float32)
    ids = [o.object_id for *_, o in found]
    return Detections(
        boxes=boxes,
        scores=np.array(
            [o.confidence if o.confidence >= 0 else TRACKED_SCORE for *_, o in found], np.float32
        ),
        classes=np.array([o.class_id for *_, o in found], dtype=np.int32),
        frame_index=np.zeros(len(found), dtype=np.int32),
        track_ids=np.array([-1 if i == UNTRACKED_OBJECT_ID else i for i in ids], dtype=np.int64),
    )


def merge_detected(tracked: Detections, detected: Detections) -> Detections:
    """The tracker's objects on a frame, with the detections the frame's plan accepted folded in.

    A detection the tracker also reports (same class, overlapping) widens that object's box to cover both:
    the tracker's box is a smoothed estimate that lags a moving object. A detection the tracker dropped is
    added as it is. So nothing the detector found and the policy accepted goes unmasked, whatever the
    tracker does with it.
    """
    if len(detected) == 0:
        return tracked
    detected = detected.renumbered(0)
    if len(tracked) == 0:
        return detected
    overlap = iou_matrix(detected.boxes, tracked.boxes)
    overlap[detected.classes[:, None] != tracked.classes[None, :]] = 0.0
    boxes = tracked.boxes.copy()
    claimed = np.zeros(len(tracked), dtype=bool)
    unmatched = []
    for i in np.argsort(-overlap.max(axis=1), kind="stable"):  # the best overlaps pair up first
        free = np.where(claimed, 0.0, overlap[i])
        j = int(np.argmax(free))
        if free[j] >= SAME_OBJECT_IOU:
            claimed[j] = True
            boxes[j, :2] = np.minimum(boxes[j, :2], detected.boxes[i, :2])
            boxes[j, 2:] = np.maximum(boxes[j, 2:], detected.boxes[i, 2:])
        else:
            unmatched.append(i)
    widened = Detections(boxes, tracked.scores, tracked.classes, tracked.frame_index, tracked.track_ids)
    return Detections.concat([widened, detected.select(np.asarray(unmatched, dtype=np.int64))])
