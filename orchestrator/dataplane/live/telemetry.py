"""What a worker tells the control plane about its cameras, besides the frames themselves:

- events for the audit trail: stream started, stopped, live, failing, and fail-closed frames (coalesced to
  at most one event per camera per second, with the count);
- status every few seconds (state, counts, latency) for `/status` and `/metrics`;
- a processing summary per camera every `summary_interval_s`: frames, detections and masks per class, the
  parameter ranges applied, profile and model versions, time live. Reports are built from these.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..frame_step import StreamStats
from .sources import SourceState
from .worker import LiveCamera

Send = Callable[[str, str, dict[str, Any]], None]  # kind ("event", "status", "summary"), camera id, data

FAIL_CLOSED_EVENT_GAP_S = 1.0


@dataclass
class _Tracked:
    state: SourceState = SourceState.STARTING
    failed_reported: int = 0
    last_fail_event: float = float("-inf")
    period: StreamStats = field(default_factory=StreamStats)
    period_start: float = 0.0
    period_frames_in: int = 0
    period_dropped: int = 0
    live_s: float = 0.0
    last_tick: float = 0.0
    detections: Counter[str] = field(default_factory=Counter)  # since the stream started
    masks: Counter[str] = field(default_factory=Counter)


class Telemetry:
    def __init__(
        self,
        send: Send,
        status_interval_s: float = 2.0,
        summary_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.send = send
        self.status_interval_s = status_interval_s
        self.summary_interval_s = summary_interval_s
        self.clock = clock
        self._cameras: dict[str, _Tracked] = {}
        self._last_status = float("-inf")

    def started(self, camera: LiveCamera, details: dict[str, Any]) -> None:
        now = self.clock()
        self._cameras[camera.camera_id] = _Tracked(period_start=now, last_tick=now)
        self.send("event", camera.camera_id, {"action": "stream_started", **details})

    def stopped(self, camera: LiveCamera, reason: str) -> None:
        if camera.camera_id not in self._cameras:
            return
        self.harvest(camera)
        self._summarise(camera, self.clock())
        del self._cameras[camera.camera_id]
        self.send("event", camera.camera_id, {"action": "stream_stopped", "reason": reason})

    def harvest(self, camera: LiveCamera) -> None:
        """Take the frame step's counts so far (before its stream is rebuilt, or on every tick)."""
        tracked = self._cameras.get(camera.camera_id)
        if tracked is None or camera.stream is None:
            return
        stats, camera.stream.stats = camera.stream.stats, StreamStats()
        tracked.period.merge(stats)
        tracked.detections.update(stats.detections)
        tracked.masks.update(stats.masks)

    def tick(self, cameras: list[LiveCamera]) -> None:
        now = self.clock()
        for camera in cameras:
            tracked = self._cameras.get(camera.camera_id)
            if tracked is None:
                continue
            self._follow_state(camera, tracked, now)
            self._report_fail_closed(camera, tracked, now)
            if now - tracked.period_start >= self.summary_interval_s:
                self.harvest(camera)
                self._summarise(camera, now)
        if now - self._last_status >= self.status_interval_s:
            self._last_status = now
            for camera in cameras:
                self.harvest(camera)
                self._status(camera)

    def _follow_state(self, camera: LiveCamera, tracked: _Tracked, now: float) -> None:
        if tracked.state is SourceState.LIVE:
            tracked.live_s += now - tracked.last_tick
        tracked.last_tick = now
        state = camera.source.state
        if state is tracked.state:
            return
        tracked.state = state
        if state is SourceState.LIVE:
            self.send("event", camera.camera_id, {"action": "stream_live"})
        elif state in (SourceState.RECONNECTING, SourceState.FAILED):
            error = camera.source.stats.last_error
            self.send(
                "event", camera.camera_id, {"action": "stream_failed", "state": state.value, "error": error}
            )

    def _report_fail_closed(self, camera: LiveCamera, tracked: _Tracked, now: float) -> None:
        failed = camera.stats.frames_failed
        if failed > tracked.failed_reported and now - tracked.last_fail_event >= FAIL_CLOSED_EVENT_GAP_S:
            fallback = camera.stream.context.profile.on_failure if camera.stream else None
            self.send(
                "event",
                camera.camera_id,
                {"action": "fail_closed", "frames": failed - tracked.failed_reported, "handled_as": fallback},
            )
            tracked.failed_reported, tracked.last_fail_event = failed, now

    def _summarise(self, camera: LiveCamera, now: float) -> None:
        tracked = self._cameras[camera.camera_id]
        source = camera.source.stats
        summary = {
            **tracked.period.as_dict(),
            "interval_s": round(now - tracked.period_start, 3),
            "live_s": round(tracked.live_s, 3),
            "frames_in": source.frames_in - tracked.period_frames_in,
            "frames_dropped_overload": source.frames_dropped - tracked.period_dropped,
            "profile": camera.stream.context.profile.name if camera.stream else None,
            "models": camera.stream.model_labels if camera.stream else {},
        }
        self.send("summary", camera.camera_id, summary)
        tracked.period, tracked.period_start, tracked.live_s = StreamStats(), now, 0.0
        tracked.period_frames_in, tracked.period_dropped = source.frames_in, source.frames_dropped

    def _status(self, camera: LiveCamera) -> None:
        tracked = self._cameras.get(camera.camera_id)
        if tracked is None:
            return
        source = camera.source.stats
        self.send(
            "status",
            camera.camera_id,
            {
                "state": camera.source.state.value,
                "last_error": source.last_error,
                "frames_in": source.frames_in,
                "frames_dropped": source.frames_dropped,
                "frames_out": camera.stats.frames_out,
                "frames_failed": camera.stats.frames_failed,
                "latency_p95_s": camera.stats.latency_p95_s(),
                "detections": dict(tracked.detections),
                "masks": dict(tracked.masks),
                "detect_interval": camera.stream.detect_interval if camera.stream else None,
                "profile": camera.stream.context.profile.name if camera.stream else None,
                "models": camera.stream.model_labels if camera.stream else {},
            },
        )
