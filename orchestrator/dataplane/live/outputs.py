"""Per-camera outputs: every published (masked) frame is JPEG-encoded once and shared by all clients.

Snapshot readers take the newest JPEG; MJPEG clients wait for each new one. Nothing here ever sees a
frame that the frame step did not mask.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from PIL import Image

MJPEG_BOUNDARY = "cityveil-frame"


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass(frozen=True)
class EncodedFrame:
    sequence: int
    jpeg: bytes
    pts_s: float


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

    def publish(self, camera_id: str, frame: np.ndarray, pts_s: float) -> None:
        self.publish_encoded(camera_id, encode_jpeg(frame, self.jpeg_quality), pts_s)

    def publish_encoded(self, camera_id: str, jpeg: bytes, pts_s: float) -> None:
        """A frame a worker process already encoded (and masked)."""
        with self._changed:
            previous = self._frames.get(camera_id)
            self._frames[camera_id] = EncodedFrame(previous.sequence + 1 if previous else 1, jpeg, pts_s)
            self._known.add(camera_id)
            self._changed.notify_all()

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        with self._changed:
            previous = self._metadata.get(camera_id)
            self._metadata[camera_id] = MetadataEvent(previous.sequence + 1 if previous else 1, data)
            self._changed.notify_all()

    def snapshot(self, camera_id: str) -> EncodedFrame | None:
        with self._changed:
            return self._frames.get(camera_id)

    def follow(self, camera_id: str, wait_s: float = 1.0) -> Iterator[EncodedFrame | None]:
        """Each new frame of a camera as it is published; None after `wait_s` without one (a heartbeat)."""
        return self._follow(self._frames, camera_id, wait_s)

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


class FanOut:
    """Hands every published frame and event to several outputs (the HTTP pipe, HLS on disk...)."""

    def __init__(self, *outputs: Any) -> None:
        self.outputs = outputs

    def publish(self, camera_id: str, frame: np.ndarray, pts_s: float) -> None:
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
