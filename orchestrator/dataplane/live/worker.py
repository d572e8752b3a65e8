"""A worker runs many cameras: frames from every source are batched across streams (nvstreammux
semantics: up to `batch_size` frames, or whatever arrived within `batched_push_timeout_s` of the
first), anonymized by one shared frame step, and only then handed to the outputs.

A published frame is always masked (or fully masked on failure); a dropped frame is never published.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ...core.yuv import Frame
from ..frame_step import StreamAnonymizer, process_streams
from .metadata import MetadataBuilder
from .sources import CapturedFrame, LiveSource

LATENCY_WINDOW = 512  # frames kept for the latency percentiles
DEFAULT_FPS = 25.0  # hold-over is counted in frames: the rate of a stream that does not declare one
IDLE_RETURN_S = 0.1  # with no frames at all, hand control back this often (commands, telemetry)


class FrameOutput(Protocol):
    def publish(self, camera_id: str, frame: Frame, pts_s: float) -> None: ...

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class MuxSettings:
    batch_size: int = 4  # measured: 8 adds about 100 ms to p95 latency at 4 cameras for no more frames/s
    batched_push_timeout_s: float = 0.04


@dataclass
class CameraStats:
    frames_out: int = 0
    frames_failed: int = 0  # published fully masked or dropped because analysis failed
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def latency_p95_s(self) -> float | None:
        return float(np.percentile(list(self.latencies_s), 95)) if self.latencies_s else None


@dataclass
class LiveCamera:
    """A source, the factory of its frame step (built on the first frame, when size and rate are known)."""

    camera_id: str
    source: LiveSource
    make_stream: Callable[[int, int, float], StreamAnonymizer]
    metadata: MetadataBuilder | None = None
    stream: StreamAnonymizer | None = None
    stats: CameraStats = field(default_factory=CameraStats)


class LoadShedder:
    """Adaptive detection cadence: under overload every stream detects on fewer frames (each capped by
    its profile's max_detect_interval); when the queues have stayed empty for a while, more again."""

    MAX_INTERVAL = 30
    CALM_STEPS = 50  # batches with empty queues before detecting more often again

    def __init__(self) -> None:
        self.interval = 1
        self._calm = 0
        self._dropped = 0

    def update(self, backlog: int, dropped: int, batch_size: int) -> int:
        if dropped > self._dropped or backlog > batch_size:
            self.interval = min(self.interval + 1, self.MAX_INTERVAL)
            self._calm = 0
        elif backlog == 0:
            self._calm += 1
            if self._calm >= self.CALM_STEPS and self.interval > 1:
                self.interval -= 1
                self._calm = 0
        self._dropped = dropped
        return self.interval


class LiveWorker:
    def __init__(
        self, cameras: list[LiveCamera], output: FrameOutput, mux: MuxSettings | None = None
    ) -> None:
        self.cameras = cameras
        self.output = output
        self.mux = mux or MuxSettings()
        self.shedder = LoadShedder()

    def add(self, camera: LiveCamera) -> None:
        self.cameras.append(camera)
        camera.source.start()

    def remove(self, camera_id: str) -> LiveCamera | None:
        for camera in self.cameras:
            if camera.camera_id == camera_id:
                self.cameras.remove(camera)
                camera.source.stop()
                return camera
        return None

    def _gather(self, stop: threading.Event) -> list[tuple[LiveCamera, list[CapturedFrame]]]:
        """Frames for one batch: up to batch_size, or what came within the push timeout of the first."""
        taken: dict[str, list[CapturedFrame]] = {c.camera_id: [] for c in self.cameras}
        count, deadline = 0, None
        idle_until = time.monotonic() + IDLE_RETURN_S
        while count < self.mux.batch_size and not stop.is_set():
            for camera in self.cameras:
                frames = camera.source.take(self.mux.batch_size - count)
                taken[camera.camera_id] += frames
                count += len(frames)
            if count and deadline is None:
                deadline = time.monotonic() + self.mux.batched_push_timeout_s
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or (deadline is None and now >= idle_until):
                break
            if count < self.mux.batch_size:
                time.sleep(0.002)
        return [(c, taken[c.camera_id]) for c in self.cameras if taken[c.camera_id]]

    def step(self, stop: threading.Event | None = None) -> int:
        """Anonymize and publish one batch; returns how many frames it held."""
        gathered = self._gather(stop or threading.Event())
        batches = []
        for camera, frames in gathered:
            if camera.stream is None:
                h, w = frames[0].pixels.shape[:2]
                camera.stream = camera.make_stream(w, h, camera.source.fps or DEFAULT_FPS)
            batches.append((camera.stream, [f.pixels for f in frames]))
        results = process_streams(batches)
        for (camera, frames), camera_results in zip(gathered, results, strict=True):
            for captured, result in zip(frames, camera_results, strict=True):
                camera.stats.frames_failed += result.failed
                if result.image is None:
                    continue
                self.output.publish(camera.camera_id, result.image, captured.pts_s)
                if camera.metadata is not None:
                    h, w = result.image.shape[:2]
                    feed = camera.metadata.frame(captured.pts_s, result.tracked, w, h)
                    self.output.publish_metadata(camera.camera_id, feed)
                camera.stats.frames_out += 1
                camera.stats.latencies_s.append(time.monotonic() - captured.captured_at)
        self._shed_load()
        return sum(len(frames) for _, frames in gathered)

    def _shed_load(self) -> None:
        backlog = sum(c.source.backlog for c in self.cameras)
        dropped = sum(c.source.stats.frames_dropped for c in self.cameras)
        interval = self.shedder.update(backlog, dropped, self.mux.batch_size)
        for camera in self.cameras:
            if camera.stream is not None:
                camera.stream.shed_load(interval)

    def run(self, stop: threading.Event, between_steps: Callable[[], None] | None = None) -> None:
        """Batches until `stop`; `between_steps` runs after each (commands, telemetry)."""
        for camera in self.cameras:
            camera.source.start()
        try:
            while not stop.is_set():
                self.step(stop)
                if between_steps is not None:
                    between_steps()
        finally:
            for camera in self.cameras:
                camera.source.stop()
