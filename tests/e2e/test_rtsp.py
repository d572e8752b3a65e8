"""RTSP over real sockets: the project's GStreamer server serves masked cameras to PyAV (as a VMS would
read them) and serves a clip with a real face to the project's own RTSP camera source."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from polling import wait_for

import orchestrator.dataplane.live.rtsp as rtsp
from orchestrator.core.detections import ObjectClass
from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.dataplane.frame_step import StreamAnonymizer
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.dataplane.live.rtsp import RtspServer, RtspUnavailable, rtsp_unavailable_reason
from orchestrator.dataplane.live.sources import LiveSource, SourceSettings, SourceState
from orchestrator.dataplane.live.worker import LiveCamera, LiveWorker
from orchestrator.samples import write_sample_video
from orchestrator.video_frames import rgb_array

W, H = 320, 180
FAST_RETRY = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "open_timeout_s": 3.0, "read_timeout_s": 3.0}
UNAVAILABLE = rtsp_unavailable_reason()
needs_gstreamer = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


class Clip:
    def __init__(self, path: Path, box: tuple[int, int, int, int]) -> None:
        self.path = path
        x1, y1, x2, y2 = box
        self.face = (slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))  # inside the face, clear of its edges
        self.sky = (slice(0, 30), slice(0, x1 - 8))  # plain background, left of the face
        with av.open(str(path)) as container:
            self.raw = next(container.decode(video=0)).to_ndarray(format="rgb24")

    def changed(self, frame: np.ndarray, region: tuple[slice, slice]) -> float:
        """Share of the region's pixels that differ clearly from the raw clip."""
        delta = np.abs(frame[region].astype(int) - self.raw[region].astype(int)).max(axis=2)
        return float((delta > 24).mean())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A face standing still in the middle (so every frame has it at the same place), 4 s at 12 fps."""
    path = tmp_path_factory.mktemp("rtsp") / "door.mp4"
    boxes = write_sample_video(path, W, H, frames=48, fps=12, face_px=64, audio=False, walking=False)
    return Clip(path, boxes[0])


def read_frames(url: str, transport: str, count: int) -> list[np.ndarray]:
    with av.open(url, options={"rtsp_transport": transport}, timeout=10) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    return frames


@pytest.fixture(scope="module")
def masked_camera(clip: Clip) -> Iterator[RtspServer]:
    """A real worker masks the looping clip into CameraOutputs; the RTSP server serves it as `/door`."""
    engine = EmbeddedEngine(classes=[ObjectClass.FACE])
    public_space = BUILTIN_PROFILES["public_space"]
    faces_only = public_space.model_copy(update={"classes": {"face": public_space.classes["face"]}})

    def make_stream(width: int, height: int, fps: float) -> StreamAnonymizer:
        return engine.stream(CameraContext(faces_only, width, height, fps))

    outputs = CameraOutputs()
    source = LiveSource("door", SourceSettings(f"file://{clip.path}", loop=True))
    worker = LiveWorker([LiveCamera("door", source, make_stream)], outputs)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    server = RtspServer(outputs, host="127.0.0.1", port=0)
    server.add_camera("door")
    try:
        assert wait_for(lambda: outputs.snapshot("door") is not None, 30.0), "the worker publishes"
        yield server
    finally:
        server.close()
        stop.set()
        thread.join(10)


@needs_gstreamer
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_vms_reads_the_masked_camera_over_rtsp(
    masked_camera: RtspServer, clip: Clip, transport: str
) -> None:
    frames = read_frames(masked_camera.url("door"), transport, 5)
    assert [f.shape for f in frames] == [(H, W, 3)] * 5
    for frame in frames:
        assert clip.changed(frame, clip.face) > 0.5, "the face is masked"
        assert clip.changed(frame, clip.sky) < 0.05, "the rest is the camera's picture, not a blank frame"


@needs_gstreamer
def test_two_clients_share_one_encode(masked_camera: RtspServer) -> None:
    url = masked_camera.url("door")
    with (
        av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as first,
        av.open(url, options={"rtsp_transport": "udp"}, timeout=10) as second,
    ):
        frames = [next(first.decode(video=0)), next(second.decode(video=0))]
        assert masked_camera.encodes("door") == 1, "both clients are fed by the same media"
    assert [(f.width, f.height) for f in frames] == [(W, H)] * 2
    assert wait_for(lambda: masked_camera.encodes("door") == 0, 10.0), "no client, no encode"


@needs_gstreamer
def test_a_client_joining_a_running_stream_is_sent_a_keyframe(
    clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    rare = rtsp.CAMERA_PIPELINE.replace(f"key-int-max={rtsp.KEYFRAME_INTERVAL}", "key-int-max=100000")
    assert rare != rtsp.CAMERA_PIPELINE
    monkeypatch.setattr(rtsp, "CAMERA_PIPELINE", rare)  # the encoder makes no keyframe of its own
    outputs = CameraOutputs()
    server = RtspServer(outputs, host="127.0.0.1", port=0)
    server.add_camera("cam")
    stop = threading.Event()

    def publish() -> None:  # a picture that moves, so frames decoded without their keyframe are not it
        n = 0
        while not stop.wait(0.04):
            outputs.publish("cam", np.roll(clip.raw, 3 * n, axis=1), n * 0.04)
            n += 1

    joined: list[np.ndarray] = []
    publisher = threading.Thread(target=publish, daemon=True)
    joiner = threading.Thread(target=lambda: joined.extend(read_frames(server.url("cam"), "tcp", 1)))
    publisher.start()
    try:
        with av.open(server.url("cam"), options={"rtsp_transport": "tcp"}, timeout=10) as first:
            next(first.decode(video=0))
            joiner.start()
            assert wait_for(lambda: bool(joined), 20.0), "without a keyframe the client never shows a frame"
        assert joined[0].shape == (H, W, 3)
    finally:
        stop.set()
        server.close()  # also ends a client still waiting
        publisher.join(5)
        if joiner.ident is not None:
            joiner.join(10)


@needs_gstreamer
def test_a_removed_camera_ends_its_streams_and_is_no_longer_served(masked_camera: RtspServer) -> None:
    url = masked_camera.url("door")
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as client:
            frames = client.decode(video=0)
            next(frames)
            masked_camera.remove_camera("door")
            for _ in frames:  # the frames already sent, then the end (a stream that went on would time out)
                pass
        assert wait_for(lambda: masked_camera.encodes("door") == 0, 10.0)
        with pytest.raises(av.error.FFmpegError):  # 404 Not Found
            read_frames(url, "tcp", 1)
    finally:
        masked_camera.add_camera("door")


@needs_gstreamer
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_camera_source_reads_rtsp_and_comes_back_after_the_server_does(clip: Clip, transport: str) -> None:
    server = RtspServer(CameraOutputs(), host="127.0.0.1", port=0)
    server.serve_file("cam", clip.path)
    port = server.port
    settings = SourceSettings(server.url("cam"), rtsp_transport=transport, queue_frames=64, **FAST_RETRY)
    source = LiveSource("cam", settings).start()
    try:
        frames: list = []
        assert wait_for(lambda: bool(frames.extend(source.take()) or len(frames) >= 5), 15.0)
        assert source.state is SourceState.LIVE
        assert frames[0].pixels.shape == (H, W, 3)
        assert clip.changed(rgb_array(frames[0].pixels), clip.face) < 0.05, (
            "the raw face arrives, to be masked"
        )

        server.close()
        assert wait_for(lambda: source.state is SourceState.RECONNECTING, 15.0)
        connects = source.stats.connects
        server = RtspServer(CameraOutputs(), host="127.0.0.1", port=port)
        server.serve_file("cam", clip.path)
        source.take()
        assert wait_for(lambda: source.stats.connects > connects and bool(source.take()), 10.0), (
            "live again within 10 s of the server's return"
        )
        assert source.state is SourceState.LIVE
    finally:
        source.stop()
        server.close()


def test_without_pygobject_rtsp_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gi", None)  # `import gi` now fails as if PyGObject were not installed
    reason = rtsp_unavailable_reason()
    assert reason and reason.startswith("RTSP is unavailable") and "PyGObject" in reason
    with pytest.raises(RtspUnavailable, match="RTSP is unavailable"):
        RtspServer(CameraOutputs())


@needs_gstreamer
def test_a_missing_gstreamer_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtsp, "ELEMENTS", (*rtsp.ELEMENTS, "nosuchencoder"))
    assert "nosuchencoder" in (rtsp_unavailable_reason() or "")
