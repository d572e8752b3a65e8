"""A worker over several looping cameras, with the real models: batches span cameras, nothing raw leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

import orchestrator.dataplane.live.worker as worker_module
from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.core.policy import CameraContext, DetectorTraits
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.core.yuv import Frame
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.dataplane.frame_step import StreamAnonymizer
from orchestrator.dataplane.live.metadata import AnonymousIds, MetadataBuilder
from orchestrator.dataplane.live.sources import LiveSource, SourceSettings
from orchestrator.dataplane.live.worker import LiveCamera, LiveWorker, MuxSettings
from orchestrator.samples import write_sample_video
from orchestrator.video_frames import rgb_array

FPS, FRAMES = 12, 24


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[str, np.ndarray, float]] = []
        self.metadata: list[dict] = []

    def publish(self, camera_id: str, frame: Frame, pts_s: float) -> None:
        self.frames.append((camera_id, rgb_array(frame).copy(), pts_s))

    def publish_metadata(self, camera_id: str, data: dict) -> None:
        self.metadata.append(data)


@pytest.fixture(scope="module")
def clip(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[int, int, int, int]], list[np.ndarray]]:
    path = tmp_path_factory.mktemp("worker") / "walk.mp4"
    boxes = write_sample_video(path, width=320, height=180, frames=FRAMES, fps=FPS, face_px=64, audio=False)
    with av.open(str(path)) as container:
        raw = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return path, boxes, raw


def cameras(
    path: Path, count: int, make_stream: Callable[[int, int, float], StreamAnonymizer]
) -> list[LiveCamera]:
    settings = SourceSettings(f"file://{path}", loop=True, queue_frames=32)
    ids = AnonymousIds()
    return [
        LiveCamera(f"cam{k}", LiveSource(f"cam{k}", settings), make_stream, MetadataBuilder(f"cam{k}", ids))
        for k in range(count)
    ]


def run_for(worker: LiveWorker, seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(10)


def test_three_cameras_are_batched_together_and_every_published_face_is_masked(
    clip: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, boxes, raw = clip
    engine = EmbeddedEngine(classes=[ObjectClass.FACE])
    profile = BUILTIN_PROFILES["public_space"].model_copy(
        update={"classes": {"face": BUILTIN_PROFILES["public_space"].classes["face"]}}
    )

    def make_stream(width: int, height: int, fps: float) -> StreamAnonymizer:
        assert fps == FPS, "the source's own rate"
        return engine.stream(CameraContext(profile, width, height, fps))

    batch_sizes: list[int] = []
    real = worker_module.process_streams
    monkeypatch.setattr(
        worker_module, "process_streams", lambda batches: batch_sizes.append(len(batches)) or real(batches)
    )
    recorder = Recorder()
    worker = LiveWorker(cameras(path, 3, make_stream), recorder, MuxSettings(batch_size=6))
    run_for(worker, 2.5)

    assert {camera for camera, _, _ in recorder.frames} == {"cam0", "cam1", "cam2"}
    assert max(batch_sizes) >= 2, "one inference batch held frames of several cameras"
    for camera_id, frame, pts_s in recorder.frames:
        index = round(pts_s * FPS) % FRAMES
        x1, y1, x2, y2 = boxes[index]
        inner = (slice(y1 + 10, y2 - 10), slice(x1 + 10, x2 - 10))
        changed = (np.abs(frame[inner].astype(int) - raw[index][inner].astype(int)).max(axis=2) > 24).mean()
        assert changed > 0.5, f"{camera_id} published the face of frame {index}"
    for camera in worker.cameras:
        assert camera.stats.frames_out > 0
        assert camera.stats.latency_p95_s() is not None
    faces = [obj for event in recorder.metadata for obj in event["objects"]]
    assert faces and all(obj["class"] == "face" and len(obj["id"]) == 12 for obj in faces)


class BrokenDetector:
    object_class = ObjectClass.FACE
    traits = DetectorTraits(reliable_min_px=12, box_slack=0)
    label = "broken:1"

    def detect(self, frames: list[np.ndarray], scale: float, threshold: float) -> Detections:
        raise TimeoutError("inference missed its deadline")


def test_when_inference_fails_only_fully_masked_frames_are_published(clip: tuple) -> None:
    path, _, _ = clip
    profile = BUILTIN_PROFILES["public_space"]

    def make_stream(width: int, height: int, fps: float) -> StreamAnonymizer:
        return StreamAnonymizer(
            CameraContext(profile, width, height, fps), {ObjectClass.FACE: BrokenDetector()}
        )

    recorder = Recorder()
    worker = LiveWorker(cameras(path, 2, make_stream), recorder)
    run_for(worker, 1.0)

    assert recorder.frames
    # Painted in YUV, the grey comes back to RGB within a level or two of SOLID_COLOUR.
    grey = np.asarray(SOLID_COLOUR)
    assert all(np.abs(frame.astype(int) - grey).max() <= 2 for _, frame, _ in recorder.frames)
    assert all(c.stats.frames_failed == c.stats.frames_out > 0 for c in worker.cameras)
