"""Recorded video: PyAV decode -> frame step in batches -> H.264 encode, audio copied, size and timing kept.

Decoding and encoding run in their own threads (FFmpeg releases the GIL), so on a small CPU box they
overlap with inference instead of adding to it. Frames stay in yuv420p, as H.264 carries them, and are
masked plane by plane: converting every frame to RGB and back cost 5.3 ms a frame at 720p; only the
detectors' inputs are converted, scaled in the same pass.

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

from ...atomic_files import atomic_output
from ...core.yuv import Frame
from ...video_frames import decoded, video_frame
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


def probe(path: Path) -> VideoInfo:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            return VideoInfo(stream.width, stream.height, Fraction(rate), stream.frames)
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
    info: VideoInfo | None = None,
) -> VideoInfo:
    """Write the anonymized video to `target` (whole or not at all).

    Raises MediaError on bad input, NothingToWrite when every frame was dropped (no file is left).
    """
    info = info or probe(source)  # callers that already probed the file pass what they read
    try:
        with av.open(str(source)) as inp, atomic_output(target) as tmp:
            job = _Transcode(source, target, inp, info, anonymizer, on_frames)
            with av.open(str(tmp), "w") as out:
                kept = job.run(out)
            job.check_complete()
            if kept == 0:
                raise NothingToWrite(f"every frame of {source} was dropped; nothing was written")
    except av.error.FFmpegError as exc:  # opening the input again, or finishing the output file
        raise MediaError(f"{source} could not be converted to {target.name} ({exc.strerror})") from None
    return info


class _Transcode:
    """One video: a decode thread, the frame step in batches on the calling thread, an encode thread."""

    def __init__(
        self,
        source: Path,
        target: Path,
        inp: av.container.InputContainer,
        info: VideoInfo,
        anonymizer: StreamAnonymizer,
        on_frames: Callable[[int], object],
    ) -> None:
        self.source, self.target, self.inp, self.info = source, target, inp, info
        self.anonymizer, self.on_frames = anonymizer, on_frames
        self.decoded: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        self.masked: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        self.stop = threading.Event()
        self.seen = _Timeline()
        self.written = 0

        self.v_in = inp.streams.video[0]
        self.v_in.thread_type = "AUTO"
        self.a_in = inp.streams.audio[0] if inp.streams.audio else None
        self.streams: list[Any] = [s for s in (self.v_in, self.a_in) if s is not None]
        self.v_tb: Fraction = self.v_in.time_base or 1 / info.rate
        self.a_tb: Fraction | None = self.a_in.time_base if self.a_in is not None else None
        self.audio_codec = self.a_in.codec_context.name if self.a_in is not None else ""
        self.start = _start_offset(inp, self.streams)
        self.v_offset = round(self.start / self.v_tb)
        self.a_offset = round(self.start / self.a_tb) if self.a_tb else 0
        self.frame_ticks = max(1, round(1 / (info.rate * self.v_tb)))  # one frame, in video time base
        self.declared = _declared_end(inp, self.v_in)

    def run(self, out: av.container.OutputContainer) -> int:
        """Decode, anonymize and encode into `out`; returns the number of video frames written."""
        self._add_streams(out)
        decoder, encoder = _Worker(self._decode, self.stop), _Worker(lambda: self._encode(out), self.stop)
        decoder.start()
        encoder.start()
        try:
            batch: list[Frame] = []
            stamps: list[int] = []
            audio: list[Any] = []
            for kind, payload in _items(self.decoded, self.stop):
                if kind == "audio":
                    audio.append(payload)
                    continue
                batch.append(payload[0])
                stamps.append(payload[1])
                if len(batch) == BATCH_FRAMES:
                    self._flush(batch, stamps, audio)
                    batch, stamps, audio = [], [], []
            self._flush(batch, stamps, audio)
        except BaseException:
            self.stop.set()
            raise
        finally:
            _put(self.masked, _END, self.stop)
            try:
                decoder.finish()
            except av.error.FFmpegError as exc:
                self.stop.set()
                raise MediaError(
                    f"{self.source} could not be decoded ({exc.strerror}); it may be corrupt"
                ) from exc
            finally:
                encoder.join()
        encoder.finish()
        return self.written

    def check_complete(self) -> None:
        _check_complete(self.source, self.info, self.seen, self.declared, self.start)

    def _add_streams(self, out: av.container.OutputContainer) -> None:
        self.v_out = out.add_stream("libx264", rate=self.info.rate)
        self.v_out.width, self.v_out.height = self.info.width, self.info.height
        self.v_out.pix_fmt = pixel_format(self.info.width, self.info.height)
        self.v_out.time_base = self.v_tb  # the muxer may still choose its own; PyAV rescales into it
        self.v_out.codec_context.time_base = self.v_tb
        # superfast at x264's default quality: on a small CPU box encoding competes with inference.
        self.v_out.options = {"preset": "superfast", "crf": "23"}
        self.a_out = None
        if self.a_in is not None:
            try:
                self.a_out = out.add_stream_from_template(self.a_in)
            except ValueError:
                container = self.target.suffix
                raise MediaError(
                    f"{self.source} has {self.audio_codec} audio, which a {container} file cannot hold"
                ) from None

    def _decode(self) -> None:
        previous: int | None = None  # pts of the last frame, offset removed
        try:
            for packet in self.inp.demux(*self.streams):
                if self.stop.is_set():
                    return
                if packet.stream is self.a_in:
                    self._pass_audio(packet)
                    continue
                self.seen.packets += bool(packet.size)
                for frame in packet.decode():
                    previous = self._video_pts(frame, previous)
                    self.seen.frames += 1
                    pixels = decoded(frame, self.info.width, self.info.height)  # the output keeps one size
                    _put(self.decoded, ("video", (pixels, previous)), self.stop)
        finally:
            _put(self.decoded, _END, self.stop)

    def _pass_audio(self, packet: Any) -> None:
        if packet.dts is None or self.a_tb is None:
            return
        when = packet.pts if packet.pts is not None else packet.dts
        end = (when + (packet.duration or 0)) * self.a_tb
        self.seen.audio_end = end if self.seen.audio_end is None else max(self.seen.audio_end, end)
        packet.dts -= self.a_offset
        if packet.pts is not None:
            packet.pts -= self.a_offset
        _put(self.decoded, ("audio", packet), self.stop)

    def _video_pts(self, frame: av.VideoFrame, previous: int | None) -> int:
        """The frame's output timestamp (video time base, start offset removed), and note where it ends."""
        tb = frame.time_base or self.v_tb
        if frame.pts is not None:
            pts = round(frame.pts * tb / self.v_tb) - self.v_offset
        else:  # no timestamp: one frame after the previous one
            pts = 0 if previous is None else previous + self.frame_ticks
        if previous is not None and pts <= previous:
            pts = previous + 1  # the encoder needs increasing timestamps
        ticks = round(frame.duration * tb / self.v_tb) if frame.duration else self.frame_ticks
        end = (pts + self.v_offset + ticks) * self.v_tb
        self.seen.video_end = end if self.seen.video_end is None else max(self.seen.video_end, end)
        return pts

    def _encode(self, out: av.container.OutputContainer) -> None:
        try:
            for kind, payload in _items(self.masked, self.stop):
                if kind == "audio":
                    payload.stream = self.a_out
                    try:
                        out.mux(payload)
                    except av.error.FFmpegError as exc:
                        raise MediaError(
                            f"{self.source}: its {self.audio_codec} audio could not be "
                            f"written to {self.target.name} ({exc.strerror})"
                        ) from None
                    continue
                pixels, pts = payload
                frame = video_frame(pixels)
                frame.pts, frame.time_base = pts, self.v_tb
                out.mux(self.v_out.encode(frame))
                self.written += 1
            out.mux(self.v_out.encode(None))
        except av.error.FFmpegError as exc:
            raise MediaError(
                f"{self.source} could not be encoded to {self.target.name} ({exc.strerror})"
            ) from None

    def _flush(self, batch: list[Frame], stamps: list[int], pending_audio: list[Any]) -> None:
        results: list[FrameResult] = self.anonymizer.process(batch) if batch else []
        for result, pts in zip(results, stamps, strict=True):
            if result.image is not None:  # a dropped frame leaves a gap in the timeline
                _put(self.masked, ("video", (result.image, pts)), self.stop)
        for packet in pending_audio:
            _put(self.masked, ("audio", packet), self.stop)
        self.on_frames(len(batch))
