"""Per-camera outputs: every published (masked) frame is JPEG-encoded once and shared by all clients.

Snapshot readers take the newest JPEG; MJPEG clients wait for each new one. Nothing here ever sees a
frame that the frame step did not mask.

Encoding costs more than anything but detection, so it follows demand: a camera's frames are encoded
for streaming only while someone follows them (MJPEG, RTSP), and its HLS rendition is written only while
it is being requested; otherwise a snapshot is refreshed about once a second.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from PIL import Image

from ...core.yuv import Frame
from ...video_frames import rgb_array

MJPEG_BOUNDARY = "cityveil-frame"
SNAPSHOT_INTERVAL_S = 1.0  # how stale a snapshot may be while nobody streams the camera
HLS_IDLE_S = 60.0  # an HLS rendition stops this long after its last request


def encode_jpeg(frame: Frame, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb_array(frame)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass(frozen=True)
class EncodedFrame:
    sequence: int
    jpeg: bytes
    pts_s: float


@dataclass(frozen=True)
class Demand:
    streaming: frozenset[str]  # cameras someone follows frame by frame
    hls: frozenset[str]  # cameras whose HLS rendition was requested lately


@dataclass(frozen=True)
class MetadataEvent:
    sequence: int
    data: dict[str, Any]


Published = TypeVar("Published", EncodedFrame, MetadataEvent)


class CameraOutputs:
    """The newest encoded frame and metadata event of each camera, and a condition clients wait on."""

    def __init__(self, jpeg_quality: int = 80) -> None:
        self.jpeg_quality = jpeg_quality
        self._frames: dict[str, EncodedFrame] = {}
        self._metadata: dict[str, MetadataEvent] = {}
        self._known: set[str] = set()
        self._changed = threading.Condition()
        self._followers: Counter[str] = Counter()
        self._hls_requested: dict[str, float] = {}

    def register(self, camera_id: str) -> None:
        with self._changed:
            self._known.add(camera_id)

    def unregister(self, camera_id: str) -> None:
        """The camera is gone: its last frame is forgotten and its followers end."""
        with self._changed:
            self._known.discard(camera_id)
            self._frames.pop(camera_id, None)
            self._metadata.pop(camera_id, None)
            self._changed.notify_all()

    def cameras(self) -> list[str]:
        with self._changed:
            return sorted(self._known)

    def publish(self, camera_id: str, frame: Frame, pts_s: float) -> None:
        self.publish_encoded(camera_id, encode_jpeg(frame, self.jpeg_quality), pts_s)

    def publish_encoded(self, camera_id: str, jpeg: bytes, pts_s: float) -> None:
        """A frame a worker process already encoded (and masked). Frames of a camera that is not
        registered (not yet, or no longer: a removed camera's last frames in flight) are let go."""
        with self._changed:
            if camera_id not in self._known:
                return
            previous = self._frames.get(camera_id)
            self._frames[camera_id] = EncodedFrame(previous.sequence + 1 if previous else 1, jpeg, pts_s)
            self._changed.notify_all()

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        with self._changed:
            if camera_id not in self._known:
                return
            previous = self._metadata.get(camera_id)
            self._metadata[camera_id] = MetadataEvent(previous.sequence + 1 if previous else 1, data)
            self._changed.notify_all()

    def snapshot(self, camera_id: str) -> EncodedFrame | None:
        with self._changed:
            return self._frames.get(camera_id)

    def follow(self, camera_id: str, wait_s: float = 1.0) -> Iterator[EncodedFrame | None]:
        """Each new frame of a camera as it is published; None after `wait_s` without one (a heartbeat).
        While the iterator runs, the camera's frames are in demand."""
        with self._changed:
            self._followers[camera_id] += 1
        try:
            yield from self._follow(self._frames, camera_id, wait_s)
        finally:
            with self._changed:
                self._followers[camera_id] -= 1

    def hls_requested(self, camera_id: str) -> None:
        with self._changed:
            self._hls_requested[camera_id] = time.monotonic()

    def demand(self) -> Demand:
        now = time.monotonic()
        with self._changed:
            streaming = frozenset(c for c, n in self._followers.items() if n > 0)
            hls = frozenset(c for c, t in self._hls_requested.items() if now - t < HLS_IDLE_S)
        return Demand(streaming, hls)

    def follow_metadata(self, camera_id: str, wait_s: float = 1.0) -> Iterator[MetadataEvent | None]:
        return self._follow(self._metadata, camera_id, wait_s)

    def _follow(
        self, latest: dict[str, Published], camera_id: str, wait_s: float
    ) -> Iterator[Published | None]:
        seen = 0

        def newer(after: int) -> bool:
            if camera_id not in self._known:
                return True  # wake up to end
            item = latest.get(camera_id)
            return item is not None and item.sequence > after

        while True:
            with self._changed:
                self._changed.wait_for(partial(newer, seen), wait_s)
                if camera_id not in self._known:
                    return
                item = latest.get(camera_id)
            if item is None or item.sequence <= seen:
                yield None
                continue
            seen = item.sequence
            yield item


class DemandGate:
    """A worker's view of the demand the server process reports: which frames are worth encoding."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.demand = Demand(frozenset(), frozenset())
        self.clock = clock
        self._last_snapshot: dict[str, float] = {}

    def wants_jpeg(self, camera_id: str) -> bool:
        now = self.clock()
        if (
            camera_id in self.demand.streaming
            or now - self._last_snapshot.get(camera_id, -1e9) >= SNAPSHOT_INTERVAL_S
        ):
            self._last_snapshot[camera_id] = now
            return True
        return False

    def wants_hls(self, camera_id: str) -> bool:
        return camera_id in self.demand.hls


class FanOut:
    """Hands every published frame and event to several outputs (the HTTP pipe, HLS on disk...)."""

    def __init__(self, *outputs: Any) -> None:
        self.outputs = outputs

    def publish(self, camera_id: str, frame: Frame, pts_s: float) -> None:
        for output in self.outputs:
            output.publish(camera_id, frame, pts_s)

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        for output in self.outputs:
            output.publish_metadata(camera_id, data)


def mjpeg_parts(frames: Iterator[EncodedFrame | None]) -> Iterator[bytes]:
    """multipart/x-mixed-replace body parts, one per new frame (heartbeats are skipped)."""
    for frame in frames:
        if frame is None:
            continue
        header = (
            f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
        )
        yield header.encode() + frame.jpeg + b"\r\n"


def sse_events(events: Iterator[MetadataEvent | None]) -> Iterator[bytes]:
    """text/event-stream: one `data:` line per event; a comment as heartbeat, so dead clients are noticed."""
    for event in events:
        yield b": keep-alive\n\n" if event is None else f"data: {json.dumps(event.data)}\n\n".encode()
