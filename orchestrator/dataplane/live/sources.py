"""Camera sources: PyAV reads RTSP, HTTP(S) (MJPEG, HLS) and files, and keeps reading whatever happens.

Each source runs in its own thread and never blocks the others: a source that stalls or fails goes to
`reconnecting` and retries with exponential back-off and jitter, while frames from live sources flow on.
Frames wait in a small bounded queue; under overload the oldest frame is dropped (and counted), never
published. A `file://` source with `loop` replays its file at its own frame rate, like a live camera.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import urlparse

import av
import structlog

from ...core.urls import redact_in
from ...core.yuv import Frame
from ...video_frames import decoded

log = structlog.get_logger(__name__)


class SourceState(str, Enum):
    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class SourceSettings:
    url: str
    loop: bool = False  # file:// only: start again at the end
    rtsp_transport: str = "tcp"  # or "udp"
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    max_attempts: int | None = None  # consecutive failed connections before `failed`; None: never give up
    queue_frames: int = 8


@dataclass(frozen=True)
class CapturedFrame:
    pixels: Frame  # yuv420p, or HxWx3 RGB for odd sizes (video_frames.decoded)
    pts_s: float  # source timestamp, seconds
    captured_at: float  # time.monotonic() when decoded: latency is measured from here


@dataclass
class SourceStats:
    frames_in: int = 0
    frames_dropped: int = 0  # oldest frames dropped from a full queue
    connects: int = 0
    failures: int = 0
    last_error: str | None = None


class SourceEnded(Exception):
    """A non-looping stream reached its end: a live camera should never do that, so reconnect."""


def _input_options(settings: SourceSettings) -> dict[str, str]:
    scheme = urlparse(settings.url).scheme
    micros = str(int(settings.read_timeout_s * 1_000_000))
    if scheme in ("rtsp", "rtsps"):
        return {"rtsp_transport": settings.rtsp_transport, "timeout": micros}
    if scheme in ("http", "https"):
        return {"rw_timeout": micros, "reconnect": "1"}
    return {}


def _location(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path if parsed.scheme == "file" else url


@dataclass
class LiveSource:
    """One camera. `start()` launches its reader thread; `take()` hands over the queued frames."""

    camera_id: str
    settings: SourceSettings
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.state = SourceState.STARTING
        self.stats = SourceStats()
        self.fps: float | None = None  # the stream's declared frame rate, once connected
        self._queue: deque[CapturedFrame] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera_id}", daemon=True)
        self.log = log.bind(camera=self.camera_id)

    def start(self) -> LiveSource:
        if self._thread.ident is None:  # once: a worker may be handed a source that already runs
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)
        self.state = SourceState.STOPPED

    def take(self, limit: int | None = None) -> list[CapturedFrame]:
        """The queued frames, oldest first (at most `limit`), removed from the queue."""
        with self._lock:
            count = len(self._queue) if limit is None else min(limit, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    @property
    def backlog(self) -> int:
        """Frames waiting to be taken."""
        with self._lock:
            return len(self._queue)

    def _push(self, frame: CapturedFrame) -> None:
        with self._lock:
            if len(self._queue) >= self.settings.queue_frames:
                self._queue.popleft()
                self.stats.frames_dropped += 1
            self._queue.append(frame)
            self.stats.frames_in += 1

    def _run(self) -> None:
        backoff = self.settings.backoff_initial_s
        attempts = 0
        while not self._stopping.is_set():
            try:
                for frame in self._frames():
                    if self.state is not SourceState.LIVE:
                        self.state = SourceState.LIVE
                        self.log.info("source_live")
                    backoff, attempts = self.settings.backoff_initial_s, 0
                    self._push(frame)
                    if self._stopping.is_set():
                        return
            except (av.error.FFmpegError, SourceEnded, OSError) as exc:
                self.stats.failures += 1
                self.stats.last_error = redact_in(str(exc), self.settings.url)
                attempts += 1
                if self.settings.max_attempts is not None and attempts >= self.settings.max_attempts:
                    self.state = SourceState.FAILED
                    self.log.error("source_failed", error=self.stats.last_error, attempts=attempts)
                    return
                self.state = SourceState.RECONNECTING
                delay = backoff * (
                    0.5 + self.rng.random()
                )  # jitter: cameras of one site do not retry in step
                self.log.warning(
                    "source_reconnecting", error=self.stats.last_error, retry_in_s=round(delay, 2)
                )
                self._stopping.wait(delay)
                backoff = min(backoff * 2, self.settings.backoff_max_s)

    def _frames(self) -> Iterator[CapturedFrame]:
        """Frames of one connection; ends by raising (a live camera's stream has no end)."""
        location = _location(self.settings.url)
        looping = self.settings.loop and urlparse(self.settings.url).scheme in ("", "file")
        if looping and not Path(location).is_file():
            raise SourceEnded(f"{location} does not exist")
        with av.open(
            location,
            options=_input_options(self.settings),
            timeout=(self.settings.open_timeout_s, self.settings.read_timeout_s),
        ) as container:
            self.stats.connects += 1
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.average_rate:
                self.fps = float(stream.average_rate)
            paced_from: float | None = None
            offset = 0.0  # added to a looping file's timestamps so they keep increasing
            while True:
                last = 0.0
                for frame in container.decode(stream):
                    pts_s = float(frame.time) if frame.time is not None else last
                    last = pts_s
                    if looping:  # replay at the file's own rate, like a camera
                        now = time.monotonic()
                        paced_from = now - pts_s if paced_from is None else paced_from
                        wait = paced_from + offset + pts_s - now
                        if wait > 0:
                            self._stopping.wait(wait)
                    yield CapturedFrame(decoded(frame), offset + pts_s, time.monotonic())
                if not looping:
                    raise SourceEnded(f"{self.camera_id}: the stream ended")
                offset += last + (1 / float(stream.average_rate or 25))
                container.seek(0)
