"""Recorded video: PyAV decode -> frame step in batches -> H.264 encode, audio copied, size and rate kept.

Decoding and encoding run in their own threads (FFmpeg releases the GIL), so on a small CPU box they
overlap with inference instead of adding to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..frame_step import FrameResult, StreamAnonymizer
from .atomic import atomic_output
from .images import MediaError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg"}
BATCH_FRAMES = 8  # frames per inference call: amortises ONNX Runtime's per-call cost on a CPU
QUEUE_DEPTH = 16
_END = object()


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: Fraction
    frames: int  # as the container declares; 0 when unknown
    has_audio: bool


def probe(path: Path) -> VideoInfo:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            return VideoInfo(
                stream.width, stream.height, Fraction(rate), stream.frames, bool(container.streams.audio)
            )
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path} is not a readable video ({exc.strerror})") from None


def output_suffix(path: Path) -> str:
    return path.suffix.lower() if path.suffix.lower() in (".mp4", ".mkv", ".mov") else ".mp4"


class _Worker(threading.Thread):
    """A thread whose exception is re-raised in the thread that joins it."""

    def __init__(self, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self._body = target
        self._failed = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:
            self.error = exc
            self._failed.set()  # the other threads stop waiting on queues this one no longer serves

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _items(q: queue.Queue[Any], stop: threading.Event) -> Iterator[Any]:
    """Items until the end marker, or until another thread has failed."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _END:
            return
        yield item


def anonymize_video(
    source: Path,
    target: Path,
    anonymizer: StreamAnonymizer,
    on_frames: Callable[[int], object] = lambda n: None,
) -> VideoInfo:
    """Write the anonymized video to `target` (whole or not at all). Raises MediaError on bad input."""
    info = probe(source)
    decoded: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    masked: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    counts = {"packets": 0}

    with av.open(str(source)) as inp, atomic_output(target) as tmp, av.open(str(tmp), "w") as out:
        v_in = inp.streams.video[0]
        v_in.thread_type = "AUTO"
        a_in = inp.streams.audio[0] if inp.streams.audio else None
        v_out = out.add_stream("libx264", rate=info.rate)
        v_out.width, v_out.height, v_out.pix_fmt = info.width, info.height, "yuv420p"
        # superfast at x264's default quality: on a small CPU box encoding competes with inference.
        v_out.options = {"preset": "superfast", "crf": "23"}
        a_out = out.add_stream_from_template(a_in) if a_in is not None else None

        def decode() -> None:
            try:
                streams = [s for s in (v_in, a_in) if s is not None]
                for packet in inp.demux(*streams):
                    if stop.is_set():
                        return
                    if packet.stream is a_in:
                        if packet.dts is not None:
                            _put(decoded, ("audio", packet), stop)
                        continue
                    counts["packets"] += bool(packet.size)
                    for frame in packet.decode():
                        _put(decoded, ("video", frame.to_ndarray(format="rgb24")), stop)
            finally:
                _put(decoded, _END, stop)

        def encode() -> None:
            index = 0
            for kind, payload in _items(masked, stop):
                if kind == "audio":
                    payload.stream = a_out
                    out.mux(payload)
                    continue
                frame = av.VideoFrame.from_ndarray(payload, format="rgb24")
                frame.pts = index
                index += 1
                out.mux(v_out.encode(frame))
            out.mux(v_out.encode(None))

        def flush(batch: list[np.ndarray], pending_audio: list[Any]) -> None:
            results: list[FrameResult] = anonymizer.process(batch) if batch else []
            for result in results:
                if result.image is not None:
                    _put(masked, ("video", result.image), stop)
            for packet in pending_audio:
                _put(masked, ("audio", packet), stop)
            on_frames(len(batch))

        decoder, encoder = _Worker(decode, stop), _Worker(encode, stop)
        decoder.start()
        encoder.start()
        try:
            batch: list[np.ndarray] = []
            audio: list[Any] = []
            for kind, payload in _items(decoded, stop):
                if kind == "audio":
                    audio.append(payload)
                    continue
                batch.append(payload)
                if len(batch) == BATCH_FRAMES:
                    flush(batch, audio)
                    batch, audio = [], []
            flush(batch, audio)
        except BaseException:
            stop.set()
            raise
        finally:
            _put(masked, _END, stop)
            try:
                decoder.finish()
            except av.error.FFmpegError as exc:
                stop.set()
                raise MediaError(
                    f"{source} could not be decoded ({exc.strerror}); it may be corrupt"
                ) from exc
            finally:
                encoder.join()
        encoder.finish()
        # Decoders may skip a damaged packet silently; a container that ends early is caught here.
        if info.frames and counts["packets"] < info.frames:
            raise MediaError(
                f"{source} is truncated: it declares {info.frames} video packets but only "
                f"{counts['packets']} could be read"
            )
    return info
