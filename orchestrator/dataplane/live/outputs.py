"""Per-camera outputs: every published (masked) frame is JPEG-encoded once and shared by all clients.

Snapshot readers take the newest JPEG; MJPEG clients wait for each new one. Nothing here ever sees a
frame that the frame step did not mask.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

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


class CameraOutputs:
    """The newest encoded frame of each camera, and a condition MJPEG clients wait on."""

    def __init__(self, jpeg_quality: int = 80) -> None:
        self.jpeg_quality = jpeg_quality
        self._latest: dict[str, EncodedFrame] = {}
        self._known: set[str] = set()
        self._changed = threading.Condition()

    def register(self, camera_id: str) -> None:
        with self._changed:
            self._known.add(camera_id)

    def cameras(self) -> list[str]:
        with self._changed:
            return sorted(self._known)

    def publish(self, camera_id: str, frame: np.ndarray, pts_s: float) -> None:
        self.publish_encoded(camera_id, encode_jpeg(frame, self.jpeg_quality), pts_s)

    def publish_encoded(self, camera_id: str, jpeg: bytes, pts_s: float) -> None:
        """A frame a worker process already encoded (and masked)."""
        with self._changed:
            previous = self._latest.get(camera_id)
            sequence = previous.sequence + 1 if previous else 1
            self._latest[camera_id] = EncodedFrame(sequence, jpeg, pts_s)
            self._known.add(camera_id)
            self._changed.notify_all()

    def snapshot(self, camera_id: str) -> EncodedFrame | None:
        with self._changed:
            return self._latest.get(camera_id)

    def follow(self, camera_id: str, wait_s: float = 1.0) -> Iterator[EncodedFrame | None]:
        """Each new frame of a camera as it is published; None after `wait_s` without one (a heartbeat)."""
        seen = 0

        def newer(after: int) -> bool:
            frame = self._latest.get(camera_id)
            return frame is not None and frame.sequence > after

        while True:
            with self._changed:
                self._changed.wait_for(partial(newer, seen), wait_s)
                frame = self._latest.get(camera_id)
            if frame is None or frame.sequence <= seen:
                yield None
                continue
            seen = frame.sequence
            yield frame


def mjpeg_parts(frames: Iterator[EncodedFrame | None]) -> Iterator[bytes]:
    """multipart/x-mixed-replace body parts, one per new frame (heartbeats are skipped)."""
    for frame in frames:
        if frame is None:
            continue
        header = (
            f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
        )
        yield header.encode() + frame.jpeg + b"\r\n"
