"""Recorded video: PyAV decode -> frame step in batches -> H.264 encode, audio copied, size and timing kept.

Decoding and encoding run in their own threads (FFmpeg releases the GIL), so on a small CPU box they
overlap with inference instead of adding to it.

- Size: kept exactly. Frames with an odd width or height are encoded as 4:4:4 (`yuv444p`), because
  4:2:0 cannot hold them; all others as `yuv420p`.
- Timing: every frame keeps its source timestamp, in the source video stream's time base. One common
  start offset (the container's start time) is removed from video and audio alike, so a clip whose
  streams begin at 5 s starts at ~0 and stays in sync. A frame dropped by a fail-closed profile leaves a
  gap; variable frame rate stays variable. A frame without a timestamp follows its predecessor by one
  frame duration.
- Audio: packets are copied, not re-encoded. `output_suffix` keeps .mp4, .mov and .mkv inputs in their
  container and writes every other input as .mkv, which holds any audio codec.
- Bad input (unreadable, corrupt, truncated, unwritable audio) raises MediaError; truncation is caught by
  the declared packet count where the container has one, and by the declared duration otherwise.
- Output is atomic: the target is written whole or not at all. When every frame was dropped there is no
  video to write: NothingToWrite is raised and no file is left.
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

from ...atomic_files import atomic_output
from ..frame_step import FrameResult, StreamAnonymizer
from .images import MediaError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg"}
KEPT_CONTAINERS = (".mp4", ".mov", ".mkv")  # outputs keep these; anything else becomes Matroska
BATCH_FRAMES = 8  # frames per inference call: amortises ONNX Runtime's per-call cost on a CPU
QUEUE_DEPTH = 16
# A declared duration that the decoded frames fall short of by more than this many frame durations (and
# at least TRUNCATION_MIN_S) means the file was cut off.
TRUNCATION_FRAMES = 2
TRUNCATION_MIN_S = Fraction(1, 2)
_END = object()


class NothingToWrite(Exception):
    """Every video frame was dropped (fail closed): no output file is written."""


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
    """The output's extension: .mp4/.mov/.mkv inputs keep theirs; others go to .mkv (holds any audio)."""
    suffix = path.suffix.lower()
    return suffix if suffix in KEPT_CONTAINERS else ".mkv"


def pixel_format(width: int, height: int) -> str:
    """4:2:0 needs even sizes; an odd one is encoded 4:4:4 so that the size is kept exactly."""
    return "yuv444p" if width % 2 or height % 2 else "yuv420p"


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


@dataclass
class _Timeline:
    """What the decoder saw, in seconds of source time (start offset not removed)."""

    packets: int = 0  # non-empty video packets
    frames: int = 0  # decoded video frames
    video_end: Fraction | None = None  # end of the last decoded video frame
    audio_end: Fraction | None = None  # end of the last audio packet


def _start_offset(inp: av.container.InputContainer, streams: list[Any]) -> Fraction:
    """The one start time removed from every stream: the container's, else the earliest stream's."""
    if inp.start_time is not None:
        return Fraction(inp.start_time, av.time_base)
    starts = [s.start_time * s.time_base for s in streams if s.start_time is not None and s.time_base]
    return min(starts, default=Fraction(0))


def _declared_end(inp: av.container.InputContainer, v_in: Any) -> tuple[Fraction, bool] | None:
    """Where the source says it ends (seconds), and whether that is the video stream's own end."""
    if v_in.duration and v_in.time_base:
        return ((v_in.start_time or 0) + v_in.duration) * v_in.time_base, True
    if inp.duration:
        duration = Fraction(inp.duration, av.time_base)
        # Matroska counts its duration from 0, most containers from the start time: take the earlier end,
        # so that a file is never called truncated because of how its container counts.
        return min(duration, Fraction(inp.start_time or 0, av.time_base) + duration), False
    return None


def _check_complete(
    source: Path, info: VideoInfo, seen: _Timeline, declared: tuple[Fraction, bool] | None, start: Fraction
) -> None:
    """Decoders may skip a damaged packet silently, and demuxers stop at a cut: catch files that end early."""
    if info.frames and seen.packets < info.frames:
        raise MediaError(
            f"{source} is truncated: it declares {info.frames} video packets but only "
            f"{seen.packets} could be read"
        )
    if declared is not None:
        end, video_only = declared
        ends = [seen.video_end] if video_only else [seen.video_end, seen.audio_end]
        reached = max((t for t in ends if t is not None), default=start)
        if end - reached > max(TRUNCATION_FRAMES / info.rate, TRUNCATION_MIN_S):
            raise MediaError(
                f"{source} is truncated: it declares {float(end - start):.2f} s but its "
                f"{'video ends' if video_only else 'streams end'} at {float(reached - start):.2f} s"
            )
    if seen.frames == 0:
        raise MediaError(f"{source} has no video frame that could be decoded")


def anonymize_video(
    source: Path,
    target: Path,
    anonymizer: StreamAnonymizer,
    on_frames: Callable[[int], object] = lambda n: None,
) -> VideoInfo:
    """Write the anonymized video to `target` (whole or not at all).

    Raises MediaError on bad input, NothingToWrite when every frame was dropped (no file is left).
    """
    info = probe(source)
    try:
        with av.open(str(source)) as inp, atomic_output(target) as tmp:
            seen = _Timeline()
            kept = _transcode(source, target, tmp, inp, info, anonymizer, on_frames, seen)
            if kept == 0:
                raise NothingToWrite(f"every frame of {source} was dropped; nothing was written")
    except av.error.FFmpegError as exc:  # opening the input again, or finishing the output file
        raise MediaError(f"{source} could not be converted to {target.name} ({exc.strerror})") from None
    return info


def _transcode(
    source: Path,
    target: Path,
    tmp: Path,
    inp: av.container.InputContainer,
    info: VideoInfo,
    anonymizer: StreamAnonymizer,
    on_frames: Callable[[int], object],
    seen: _Timeline,
) -> int:
    """Decode, anonymize and encode `inp` into `tmp`; returns the number of video frames written."""
    decoded: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    masked: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    written = {"video": 0}

    v_in = inp.streams.video[0]
    v_in.thread_type = "AUTO"
    a_in = inp.streams.audio[0] if inp.streams.audio else None
    streams: list[Any] = [s for s in (v_in, a_in) if s is not None]
    v_tb: Fraction = v_in.time_base or 1 / info.rate
    a_tb: Fraction | None = a_in.time_base if a_in is not None else None
    audio_codec = a_in.codec_context.name if a_in is not None else ""
    start = _start_offset(inp, streams)
    v_offset = round(start / v_tb)
    a_offset = round(start / a_tb) if a_tb else 0
    frame_ticks = max(1, round(1 / (info.rate * v_tb)))  # one frame duration, in video time base
    declared = _declared_end(inp, v_in)

    with av.open(str(tmp), "w") as out:
        v_out = out.add_stream("libx264", rate=info.rate)
        v_out.width, v_out.height = info.width, info.height
        v_out.pix_fmt = pixel_format(info.width, info.height)
        v_out.time_base = v_tb  # the muxer may still choose its own; PyAV rescales into it
        v_out.codec_context.time_base = v_tb
        # superfast at x264's default quality: on a small CPU box encoding competes with inference.
        v_out.options = {"preset": "superfast", "crf": "23"}
        a_out = None
        if a_in is not None:
            try:
                a_out = out.add_stream_from_template(a_in)
            except ValueError:
                raise MediaError(
                    f"{source} has {audio_codec} audio, which a {target.suffix} file cannot hold"
                ) from None

        def decode() -> None:
            previous: int | None = None  # pts of the last frame, offset removed
            try:
                for packet in inp.demux(*streams):
                    if stop.is_set():
                        return
                    if packet.stream is a_in:
                        if packet.dts is not None and a_tb is not None:
                            when = packet.pts if packet.pts is not None else packet.dts
                            end = (when + (packet.duration or 0)) * a_tb
                            seen.audio_end = end if seen.audio_end is None else max(seen.audio_end, end)
                            packet.dts -= a_offset
                            if packet.pts is not None:
                                packet.pts -= a_offset
                            _put(decoded, ("audio", packet), stop)
                        continue
                    seen.packets += bool(packet.size)
                    for frame in packet.decode():
                        tb = frame.time_base or v_tb
                        if frame.pts is not None:
                            pts = round(frame.pts * tb / v_tb) - v_offset
                        else:  # no timestamp: one frame after the previous one
                            pts = 0 if previous is None else previous + frame_ticks
                        if previous is not None and pts <= previous:
                            pts = previous + 1  # the encoder needs increasing timestamps
                        previous = pts
                        ticks = round(frame.duration * tb / v_tb) if frame.duration else frame_ticks
                        end = (pts + v_offset + ticks) * v_tb
                        seen.video_end = end if seen.video_end is None else max(seen.video_end, end)
                        seen.frames += 1
                        _put(decoded, ("video", (frame.to_ndarray(format="rgb24"), pts)), stop)
            finally:
                _put(decoded, _END, stop)

        def encode() -> None:
            try:
                for kind, payload in _items(masked, stop):
                    if kind == "audio":
                        payload.stream = a_out
                        try:
                            out.mux(payload)
                        except av.error.FFmpegError as exc:
                            raise MediaError(
                                f"{source}: its {audio_codec} audio could not be "
                                f"written to {target.name} ({exc.strerror})"
                            ) from None
                        continue
                    pixels, pts = payload
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    frame.pts, frame.time_base = pts, v_tb
                    out.mux(v_out.encode(frame))
                    written["video"] += 1
                out.mux(v_out.encode(None))
            except av.error.FFmpegError as exc:
                raise MediaError(f"{source} could not be encoded to {target.name} ({exc.strerror})") from None

        def flush(batch: list[np.ndarray], stamps: list[int], pending_audio: list[Any]) -> None:
            results: list[FrameResult] = anonymizer.process(batch) if batch else []
            for result, pts in zip(results, stamps, strict=True):
                if result.image is not None:  # a dropped frame leaves a gap in the timeline
                    _put(masked, ("video", (result.image, pts)), stop)
            for packet in pending_audio:
                _put(masked, ("audio", packet), stop)
            on_frames(len(batch))

        decoder, encoder = _Worker(decode, stop), _Worker(encode, stop)
        decoder.start()
        encoder.start()
        try:
            batch: list[np.ndarray] = []
            stamps: list[int] = []
            audio: list[Any] = []
            for kind, payload in _items(decoded, stop):
                if kind == "audio":
                    audio.append(payload)
                    continue
                batch.append(payload[0])
                stamps.append(payload[1])
                if len(batch) == BATCH_FRAMES:
                    flush(batch, stamps, audio)
                    batch, stamps, audio = [], [], []
            flush(batch, stamps, audio)
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
    _check_complete(source, info, seen, declared, start)
    return written["video"]
