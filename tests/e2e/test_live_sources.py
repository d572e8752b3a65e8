"""Live sources on real files: looping like a camera, reconnecting with back-off, dropping under overload."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from polling import wait_for

from orchestrator.dataplane.live.sources import LiveSource, SourceSettings, SourceState
from orchestrator.samples import write_sample_video

FAST_RETRY = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "open_timeout_s": 1.0, "read_timeout_s": 1.0}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "cam.mp4"
    write_sample_video(path, width=160, height=96, frames=12, fps=24, face_px=40, audio=False)
    return path


def test_a_looping_file_plays_on_like_a_camera(clip: Path) -> None:
    source = LiveSource("cam1", SourceSettings(f"file://{clip}", loop=True, queue_frames=64)).start()
    try:
        frames = []
        assert wait_for(lambda: bool(frames.extend(source.take()) or len(frames) > 18), 5.0)
        assert source.state is SourceState.LIVE
        stamps = [f.pts_s for f in frames]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "time keeps running across loops"
        assert frames[0].pixels.shape == (96, 160, 3)
    finally:
        source.stop()
    assert source.state is SourceState.STOPPED


def test_a_source_that_is_gone_comes_back_within_seconds(clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "later.mp4"
    source = LiveSource("cam2", SourceSettings(f"file://{path}", loop=True, **FAST_RETRY)).start()
    try:
        assert wait_for(lambda: source.stats.failures >= 3, 5.0)
        assert source.state is SourceState.RECONNECTING
        shutil.copy(clip, path)
        came_back = time.monotonic()
        assert wait_for(lambda: source.state is SourceState.LIVE and bool(source.take()), 10.0)
        assert time.monotonic() - came_back < 10.0
    finally:
        source.stop()


def test_overload_drops_the_oldest_frames_and_counts_them(clip: Path) -> None:
    source = LiveSource("cam3", SourceSettings(f"file://{clip}", loop=True, queue_frames=3)).start()
    try:
        assert wait_for(lambda: source.stats.frames_dropped >= 5, 5.0)
        kept = source.take()
        assert len(kept) <= 3
        assert source.stats.frames_in - source.stats.frames_dropped >= len(kept)
    finally:
        source.stop()


def test_a_broken_stream_fails_after_its_attempts(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    settings = SourceSettings(f"file://{broken}", max_attempts=3, **FAST_RETRY)
    source = LiveSource("cam4", settings).start()
    try:
        assert wait_for(lambda: source.state is SourceState.FAILED, 5.0)
        assert source.stats.failures == 3
        assert source.stats.last_error
    finally:
        source.stop()


def test_a_stream_that_ends_is_reconnected(clip: Path) -> None:
    source = LiveSource("cam5", SourceSettings(str(clip), queue_frames=64, **FAST_RETRY)).start()
    try:
        assert wait_for(lambda: source.stats.connects >= 2, 5.0), "read to the end, then connected again"
    finally:
        source.stop()


def test_corrupt_packets_do_not_stall_the_source(tmp_path: Path) -> None:
    stream = tmp_path / "cam.ts"  # MPEG-TS, as cameras send: no index, damage stays local
    write_sample_video(stream, width=160, height=96, frames=48, fps=24, face_px=40, audio=False)
    data = bytearray(stream.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = bytes(3000)  # a run of zeroed bytes inside the coded frames
    stream.write_bytes(bytes(data))
    source = LiveSource("cam6", SourceSettings(f"file://{stream}", loop=True, queue_frames=256, **FAST_RETRY))
    source.start()
    try:
        taken: list = []
        # more than one pass over the damaged file: the decoder skips what it cannot read and goes on
        assert wait_for(lambda: bool(taken.extend(source.take()) or len(taken) > 60), 10.0), (
            "frames keep coming"
        )
        assert source.state is SourceState.LIVE
        assert source.stats.failures == 0
    finally:
        source.stop()
