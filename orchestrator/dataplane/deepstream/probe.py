"""The pipeline's two pad probes, and the GPU surfaces they work on.

- `DetectionProbe` (nvinferserver's src pad): the ensemble's DETECTIONS for each frame, thresholded by that
  camera's current plan, become object meta, so nvtracker tracks exactly what the policy accepted. The
  accepted detections also go straight to the masking probe (`FrameHandoff`), as does a failed analysis.
- `MaskingProbe` (the RGBA surface, before the demuxer): each frame's objects after the tracker, with the
  frame's accepted detections folded in (nothing the plan accepted depends on the tracker to be masked),
  go through the embedded engine's frame step (policy, hold-over, zones); the boxes of the whole batch
  are then masked by the GPU kernels in place, on the surface itself (mapped, never copied).

Fail closed: a frame the probe cannot handle for any reason is painted over whole and counted; if even
that fails, the batch is dropped. No crop and no unmasked pixel ever leaves the probe.
"""

from __future__ import annotations

import ctypes
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog

from ...core.detections import Detections
from ...core.gpu_masks import GPU_STYLES, Surface, mask_surfaces
from ...core.masks import SOLID_COLOUR, MaskStyle
from ...core.policy import MaskDecisions, accept
from ...core.xp import array_module
from ..frame_step import FrameResult, StreamAnonymizer, paint_now
from .config import ENSEMBLE_OUTPUT
from .meta import add_detections, frame_detections, frames, merge_detected, tensor_output

log = structlog.get_logger(__name__)

# PyCapsule_GetPointer with its real signature, without changing ctypes.pythonapi's shared prototypes.
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def capsule_address(capsule: Any) -> int:
    """The address a PyCapsule carries (pyds hands surface pointers over as capsules)."""
    return int(_capsule_pointer(capsule, None))


def map_rgba_surface(pyds: Any, buffer: Any, batch_id: int) -> Any:
    """Frame `batch_id` of a batched NVMM RGBA buffer as an HxWx4 CuPy array over the same GPU memory.

    Zero copy: CuPy gets the surface's own pointer, strides and size; the buffer owns the memory (CuPy's
    `UnownedMemory` keeps a reference to it), and the row pitch stays in the strides.
    """
    import cupy

    dtype, shape, strides, capsule, size = pyds.get_nvds_buf_surface_gpu(hash(buffer), batch_id)
    memory = cupy.cuda.UnownedMemory(capsule_address(capsule), size, buffer)
    return cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(memory, 0), strides)


MaskFn = Callable[[Sequence[Surface], np.ndarray, np.ndarray, MaskStyle, np.ndarray, np.ndarray], int]


def wait_for_gpu(surfaces: Sequence[Any]) -> None:
    """Every paint of a batch finished before its buffer moves on to the encoder: the kernels, and the CuPy
    work of privacy zones, noise and painting over, all on the current stream."""
    xp = array_module(*surfaces[:1])
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


@dataclass
class ProbeCounters:
    batches: int = 0
    frames: int = 0
    failed_frames: int = 0  # painted over whole: an error in a probe, missing analysis, an unknown camera
    dropped_batches: int = 0  # not even painting over worked: the buffer was never sent downstream


class CameraStreams(Protocol):
    """Which camera's frame step handles frames of a mux source slot (None: no camera there now)."""

    def stream_for(self, source_id: int) -> StreamAnonymizer | None: ...


class AnalysisFailed(RuntimeError):
    """The detection probe could not analyse the frame: the masking probe paints it over."""


class FrameHandoff:
    """What the detection probe learnt of each frame, for the masking probe: the detections the camera's
    plan accepted, or that the frame could not be analysed. The masking probe folds the detections into
    the tracker's objects, so an object the tracker drops or lags behind is masked all the same.
    """

    def __init__(self) -> None:
        # source -> frame number -> the accepted detections, or None where analysis failed
        self._frames: dict[int, dict[int, Detections | None]] = defaultdict(dict)
        self._lock = threading.Lock()  # the two probes run on different streaming threads

    def accepted(self, source_id: int, frame_num: int, detections: Detections) -> None:
        with self._lock:
            self._frames[source_id][frame_num] = detections

    def failed(self, source_id: int, frame_num: int) -> None:
        with self._lock:
            self._frames[source_id][frame_num] = None

    def take(self, source_id: int, frame_num: int) -> Detections:
        """The frame's accepted detections (none for a frame between inferences); raises AnalysisFailed."""
        with self._lock:
            frames = self._frames[source_id]
            for earlier in [n for n in frames if n < frame_num]:  # frames that never reached this probe
                del frames[earlier]
            if frame_num not in frames:
                return Detections()
            found = frames.pop(frame_num)
        if found is None:
            raise AnalysisFailed("its detections could not be read")
        return found

    def forget(self, source_id: int) -> None:
        """A camera left its source slot: what is left of it must not reach the next camera there."""
        with self._lock:
            self._frames.pop(source_id, None)


class DetectionProbe:
    def __init__(self, gst: Any, pyds: Any, streams: CameraStreams, handoff: FrameHandoff, every_frame: bool):
        self.gst, self.pyds, self.streams, self.handoff = gst, pyds, streams, handoff
        self.every_frame = every_frame  # inference runs on every batch: a frame without DETECTIONS failed

    def __call__(self, _pad: Any, info: Any, *_: Any) -> Any:
        batch_meta = self.pyds.gst_buffer_get_nvds_batch_meta(hash(info.get_buffer()))
        for frame_meta in frames(self.pyds, batch_meta):
            try:
                self._attach(batch_meta, frame_meta)
            except Exception as exc:  # the masking probe paints this frame over
                log.error("frame_not_analysed", source=frame_meta.pad_index, error=repr(exc))
                self.handoff.failed(frame_meta.pad_index, frame_meta.frame_num)
        return self.gst.PadProbeReturn.OK

    def _attach(self, batch_meta: Any, frame_meta: Any) -> None:
        stream = self.streams.stream_for(frame_meta.pad_index)
        if stream is None:  # a camera being added or removed: no plan to accept objects by
            raise LookupError(f"no camera on source {frame_meta.pad_index}")
        rows = tensor_output(self.pyds, frame_meta, ENSEMBLE_OUTPUT)
        if rows is None:
            if self.every_frame:
                raise RuntimeError(f"nvinferserver attached no {ENSEMBLE_OUTPUT} to the frame")
            return  # a batch between inferences: nvtracker carries the objects
        accepted = accept(Detections.from_rows(rows), stream.plan)
        add_detections(self.pyds, batch_meta, frame_meta, accepted)
        self.handoff.accepted(frame_meta.pad_index, frame_meta.frame_num, accepted)


class BatchPainter:
    """The frame step's painter in the probe: box decisions of a whole batch, masked together at the end.

    Noise is not a kernel style; it is painted at once by the NumPy/CuPy masks.
    """

    def __init__(self) -> None:
        self.position = 0  # the batch position of the frame the frame step works on now
        self.decisions: dict[int, list[MaskDecisions]] = defaultdict(list)

    def __call__(self, frame: Any, decisions: MaskDecisions) -> None:
        if decisions.style in GPU_STYLES:
            self.decisions[self.position].append(decisions)
        else:
            paint_now(frame, decisions)

    def forget(self, position: int) -> None:
        self.decisions.pop(position, None)

    def flush(self, surfaces: Sequence[Surface], mask: MaskFn) -> None:
        """One kernel pass per style present in the batch (at most three, whatever the box count)."""
        by_style: dict[MaskStyle, list[tuple[int, MaskDecisions]]] = defaultdict(list)
        for position, decided in self.decisions.items():
            for d in decided:
                by_style[d.style].append((position, d))
        self.decisions.clear()
        for style, items in by_style.items():
            mask(
                surfaces,
                np.concatenate([np.full(len(d.bounds), p) for p, d in items]),
                np.concatenate([d.bounds for _, d in items]),
                style,
                np.concatenate([d.strengths for _, d in items]),
                np.concatenate([d.object_sides for _, d in items]),
            )


def paint_over(surface: Any) -> None:
    """The whole frame in the solid colour (alpha kept): the fail-closed path, nothing in it can fail."""
    xp = array_module(surface)
    surface[:, :, :3] = xp.asarray(SOLID_COLOUR, dtype=xp.uint8)


class MaskingProbe:
    def __init__(
        self,
        gst: Any,
        pyds: Any,
        streams: CameraStreams,
        handoff: FrameHandoff,
        painter: BatchPainter,
        map_surface: Callable[[Any, Any, int], Any] = map_rgba_surface,
        mask: MaskFn = mask_surfaces,
    ) -> None:
        self.gst, self.pyds, self.streams, self.handoff, self.painter = gst, pyds, streams, handoff, painter
        self.map_surface, self.mask = map_surface, mask
        self.counters = ProbeCounters()
        # Called on this streaming thread after each batch: the one thread that writes the streams' stats.
        self.after_batch: Callable[[], None] = lambda: None

    def __call__(self, _pad: Any, info: Any, *_: Any) -> Any:
        buffer = info.get_buffer()
        try:
            batch_meta = self.pyds.gst_buffer_get_nvds_batch_meta(hash(buffer))
            batch = [
                (f, self.map_surface(self.pyds, buffer, f.batch_id)) for f in frames(self.pyds, batch_meta)
            ]
        except Exception as exc:  # the pixels cannot even be reached: nothing of this batch may leave
            log.error("batch_unreachable", error=repr(exc))
            self.counters.dropped_batches += 1
            return self.gst.PadProbeReturn.DROP
        self.counters.batches += 1
        self.counters.frames += len(batch)
        try:
            for position, (frame_meta, surface) in enumerate(batch):
                self._frame(position, frame_meta, surface)
            self.painter.flush([Surface.rgba(s) for _, s in batch], self.mask)
        except Exception as exc:  # the batch's masks may be partly applied: paint every frame over
            log.error("batch_masking_failed", frames=len(batch), error=repr(exc))
            self.painter.decisions.clear()
            try:
                for _, surface in batch:
                    paint_over(surface)
            except Exception as paint_exc:
                log.error("batch_dropped", error=repr(paint_exc))
                self.counters.dropped_batches += 1
                return self.gst.PadProbeReturn.DROP
            self.counters.failed_frames += len(batch)
            for frame_meta, _ in batch:  # the frame step counted these frames masked: they failed after all
                stream = self.streams.stream_for(frame_meta.pad_index)
                if stream is not None:
                    stream.stats.failed_frames += 1
        try:
            wait_for_gpu([surface for _, surface in batch])
        except Exception as exc:  # a GPU error: what the surfaces hold cannot be trusted
            log.error("batch_dropped", error=repr(exc))
            self.counters.dropped_batches += 1
            return self.gst.PadProbeReturn.DROP
        try:
            self.after_batch()
        except Exception as exc:  # bookkeeping: the batch itself is masked and goes on
            log.error("after_batch_failed", error=repr(exc))
        return self.gst.PadProbeReturn.OK

    def _frame(self, position: int, frame_meta: Any, surface: Any) -> None:
        """One frame through the frame step; any failure paints it over (and is counted)."""
        stream = self.streams.stream_for(frame_meta.pad_index)
        try:
            if stream is None:
                raise LookupError(f"no camera on source {frame_meta.pad_index}")
            detected = self.handoff.take(frame_meta.pad_index, frame_meta.frame_num)
            found = merge_detected(frame_detections(self.pyds, frame_meta), detected)
            self.painter.position = position
            per_class = {c: [[found.select(found.classes == c)]] for c in stream.detectors}
            result = stream.complete([surface[:, :, :3]], per_class)[0]
        except Exception as exc:
            log.error("frame_painted_over", source=frame_meta.pad_index, error=repr(exc))
            self.painter.forget(position)
            paint_over(surface)
            self.counters.failed_frames += 1
            if stream is not None:  # in the camera's processing summary, as the frame step counts its own
                painted = FrameResult(surface, analysed=False, failed=True, detections={}, masks={"frame": 1})
                stream.stats.add(painted, stream.plan)
            return
        if result.image is None:  # the profile drops failed frames; one frame of a batch cannot be dropped
            paint_over(surface)
