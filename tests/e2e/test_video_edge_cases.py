"""Video inputs that broke the batch engine: odd sizes, foreign audio, late starts, cuts, dropped frames.

Every clip is made here with PyAV (small and short), run through `cityveil anonymize` (or the engine
itself where the job has no switch for it) and read back with PyAV.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.dataplane.batch.video import NothingToWrite, anonymize_video
from orchestrator.samples import background, write_sample_video

AUDIO_RATE = 48000


def cli(*args: object) -> int:
    return main([str(a) for a in args])


def make_clip(
    path: Path,
    width: int = 96,
    height: int = 64,
    pts: list[int] | None = None,
    fps: int = 12,
    video_codec: str = "libx264",
    audio_codec: str | None = "aac",
    start_s: int = 0,
    pix_fmt: str | None = None,
) -> None:
    """A clip whose frame i is shown at `pts[i]` / `fps` s (default: 16 evenly spaced frames), plus
    `start_s`; audio (a tone, when `audio_codec`) covers the same span."""
    pts = list(range(16)) if pts is None else pts
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height = width, height
        odd = video_codec == "libx264" and (width % 2 or height % 2)
        video.pix_fmt = pix_fmt or ("yuv444p" if odd else "yuv420p")
        sound = out.add_stream(audio_codec, rate=AUDIO_RATE, layout="mono") if audio_codec else None
        for i, t in enumerate(pts):
            pixels = background(width, height)
            pixels[:, (i * 5) % width] = 255  # a moving line, so that frames differ
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = t + start_s * fps, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            sample_format = sound.codec_context.format.name
            total = AUDIO_RATE * (pts[-1] + 1) // fps
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / AUDIO_RATE)
            floats = sample_format.startswith("flt")
            samples = tone.astype(np.float32) if floats else (tone * 32767).astype(np.int16)
            for first in range(0, total, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[None, first : first + 1024]),
                    format=sample_format,
                    layout="mono",
                )
                chunk.sample_rate = AUDIO_RATE
                chunk.pts, chunk.time_base = first + start_s * AUDIO_RATE, Fraction(1, AUDIO_RATE)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))


def video_times(path: Path) -> list[float]:
    """Presentation time (s) of every decoded video frame."""
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]


def packet_spans(path: Path) -> dict[str, tuple[float, float]]:
    """(first start, last end) in seconds of the packets of each stream type."""
    spans: dict[str, tuple[float, float]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            when = packet.pts if packet.pts is not None else packet.dts
            if when is None or packet.time_base is None:
                continue
            start = float(when * packet.time_base)
            end = float((when + (packet.duration or 0)) * packet.time_base)
            first, last = spans.get(packet.stream.type, (start, end))
            spans[packet.stream.type] = (min(first, start), max(last, end))
    return spans


def refused(args: list[object], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cityveil: ") and "Traceback" not in err and "\n" not in err
    return err


def test_odd_size_clip_keeps_its_exact_size(tmp_path: Path, out_dir: Path) -> None:
    clip = tmp_path / "odd.mp4"
    make_clip(clip, width=65, height=49, pts=list(range(12)), audio_codec=None)
    assert cli("anonymize", clip, "-o", out_dir, "-q") == 0
    with av.open(str(out_dir / "odd.mp4")) as result:
        stream = result.streams.video[0]
        assert (stream.width, stream.height) == (65, 49)
        assert stream.codec_context.pix_fmt == "yuv444p"
        frames = [f.to_ndarray(format="rgb24") for f in result.decode(stream)]
    assert len(frames) == 12 and frames[0].shape == (49, 65, 3)


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_a_full_range_clip_keeps_its_tones(tmp_path: Path, out_dir: Path) -> None:
    """yuvj420p (full range, as phones and some cameras record) comes out looking the same, not with its
    contrast stretched: the output is limited range, and the frames are converted to it."""
    clip = tmp_path / "full.mp4"
    make_clip(clip, width=96, height=64, pts=list(range(8)), audio_codec=None, pix_fmt="yuvj420p")
    assert cli("anonymize", clip, "-o", out_dir, "-q") == 0
    before, after = rgb_frames(clip), rgb_frames(out_dir / "full.mp4")
    assert len(after) == len(before) == 8
    # Read as limited range, full-range samples would gain 16% of contrast (255/219).
    assert abs(np.std(after) / np.std(before) - 1) < 0.05
    assert (
        np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(before, after, strict=True)])
        < 2.5
    )


def test_a_stream_that_changes_size_midway_keeps_its_first_size(tmp_path: Path, out_dir: Path) -> None:
    first, second = tmp_path / "a.ts", tmp_path / "b.ts"
    make_clip(first, width=64, height=48, pts=list(range(12)), audio_codec=None)
    make_clip(second, width=63, height=47, pts=list(range(12, 24)), audio_codec=None)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    assert cli("anonymize", joined, "-o", out_dir, "-q") == 0
    frames = rgb_frames(out_dir / "joined.mkv")
    assert len(frames) == 24 and {f.shape for f in frames} == {(48, 64, 3)}


def test_avi_with_pcm_audio_becomes_mkv_with_its_audio(tmp_path: Path, out_dir: Path) -> None:
    clip = tmp_path / "cam.avi"
    make_clip(clip, video_codec="mpeg4", audio_codec="pcm_s16le")
    assert cli("anonymize", clip, "-o", out_dir, "-q") == 0
    assert [p.name for p in out_dir.iterdir()] == ["cam.mkv"]
    result = out_dir / "cam.mkv"
    with av.open(str(result)) as container:
        assert container.format.name.startswith("matroska")
        assert [s.codec_context.name for s in container.streams] == ["h264", "pcm_s16le"]
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples == AUDIO_RATE * 16 // 12
    spans = packet_spans(result)
    assert abs(spans["audio"][0] - spans["video"][0]) < 0.05
    assert len(video_times(result)) == 16


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_streams_starting_late_stay_in_sync(tmp_path: Path, out_dir: Path, suffix: str) -> None:
    clip = tmp_path / f"late{suffix}"
    make_clip(clip, start_s=5)
    source = packet_spans(clip)
    assert source["video"][0] > 4.5 and source["audio"][0] > 4.5  # the clip does start late
    assert cli("anonymize", clip, "-o", out_dir, "-q") == 0
    result = packet_spans(out_dir / "late.mkv")
    first_video, first_audio = video_times(out_dir / "late.mkv")[0], result["audio"][0]
    assert abs(first_video - first_audio) < 0.1, "audio and video must start together"
    assert abs(first_video) < 0.1, "the common start offset is removed"

    def span(spans: dict[str, tuple[float, float]]) -> float:
        return max(end for _, end in spans.values()) - min(start for start, _ in spans.values())

    assert span(result) == pytest.approx(span(source), abs=0.1)


def test_truncated_mkv_is_refused_and_writes_nothing(
    tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.mkv"
    write_sample_video(whole, width=160, height=120, frames=24, fps=12, face_px=48)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    err = refused(["anonymize", cut, "-o", out_dir, "-q"], capsys)
    assert str(cut) in err and "truncated" in err
    assert not out_dir.exists() or not any(out_dir.rglob("*")), "no output, not even a partial one"
    assert cli("anonymize", whole, "-o", out_dir, "-q") == 0  # the whole file is fine


@pytest.mark.parametrize(
    "pts",
    [list(range(16)), [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15, 18, 21, 24, 27]],
    ids=["constant_rate", "variable_rate"],
)
def test_mp4_keeps_frame_count_and_timestamps(tmp_path: Path, out_dir: Path, pts: list[int]) -> None:
    clip = tmp_path / "plain.mp4"
    make_clip(clip, width=160, height=120, pts=pts)
    assert cli("anonymize", clip, "-o", out_dir, "-q") == 0
    source, result = video_times(clip), video_times(out_dir / "plain.mp4")
    assert len(result) == len(source) == 16
    assert result[0] == pytest.approx(source[0], abs=1e-3)
    assert result[-1] == pytest.approx(source[-1], abs=1e-3)
    assert result == pytest.approx(source, abs=1e-3)  # a variable rate is not retimed


class DropEvery:
    """Stands in for the frame step: fail-closed drops of every `n`-th frame (n=1: all of them)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def process(self, frames: list[np.ndarray]) -> list[SimpleNamespace]:
        results = []
        for frame in frames:
            results.append(SimpleNamespace(image=None if self.seen % self.n == 0 else frame))
            self.seen += 1
        return results


def test_dropped_frames_leave_a_gap_and_the_rest_keep_their_time(tmp_path: Path) -> None:
    clip, target = tmp_path / "walk.mp4", tmp_path / "out" / "walk.mp4"
    make_clip(clip, pts=list(range(16)))
    anonymize_video(clip, target, DropEvery(2))  # type: ignore[arg-type]
    source = video_times(clip)
    assert video_times(target) == pytest.approx(source[1::2], abs=1e-3)
    spans = packet_spans(target)
    assert abs(spans["audio"][1] - spans["video"][1]) < 0.1, "the audio still ends with the video"


def test_every_frame_dropped_raises_and_leaves_no_file(tmp_path: Path) -> None:
    clip, out = tmp_path / "walk.mp4", tmp_path / "out"
    make_clip(clip, pts=list(range(12)))
    with pytest.raises(NothingToWrite):
        anonymize_video(clip, out / "walk.mp4", DropEvery(1))  # type: ignore[arg-type]
    assert not any(out.iterdir()), "no audio-only file and no temporary left behind"
