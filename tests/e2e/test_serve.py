"""`cityveil serve`: worker processes behind the HTTP outputs, a supervisor, a clean stop on SIGTERM."""

from __future__ import annotations

import io
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from polling import wait_for
from server_process import ServerProcess, create_key

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.dataplane.live.processes import Supervisor
from orchestrator.samples import write_sample_video

W, H = 320, 180


@pytest.fixture(scope="module")
def still_face(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, int, int, int]]:
    path = tmp_path_factory.mktemp("serve") / "door.mp4"
    boxes = write_sample_video(path, W, H, frames=24, fps=12, face_px=64, audio=False, walking=False)
    return path, boxes[0]


def snapshot(url: str, key: str) -> np.ndarray | None:
    try:
        with urllib.request.urlopen(authorised(url, key), timeout=2) as response:
            return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
    except (urllib.error.URLError, ConnectionError):
        return None


def authorised(url: str, key: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})


def text(url: str, key: str) -> str:
    """The body of a 200 response, else the empty string."""
    try:
        with urllib.request.urlopen(authorised(url, key), timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return ""


def test_serve_publishes_masked_snapshots_and_stops_on_sigterm(still_face: tuple, tmp_path: Path) -> None:
    clip, (x1, y1, x2, y2) = still_face
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n"
        f"  - {{id: door, source: 'file://{clip}', loop: true}}\n"
        f"  - {{id: hall, source: 'file://{clip}', loop: true, profile: residential}}\n"
    )
    data = tmp_path / "data"
    key = create_key(data, "viewer")
    server = ServerProcess(data, "--cameras", str(cameras), "--workers", "2")
    port = server.port
    try:
        frames = {}
        for camera in ("door", "hall"):
            url = f"http://127.0.0.1:{port}/v1/cameras/{camera}/snapshot.jpg"
            assert wait_for(
                lambda u=url, c=camera: frames.__setitem__(c, snapshot(u, key)) or frames[c] is not None, 90
            )
        for camera, frame in frames.items():
            face = frame[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10].astype(int)
            assert face.std(axis=(0, 1)).max() < 40, f"{camera}: the face region still has its detail"
        with urllib.request.urlopen(
            authorised(f"http://127.0.0.1:{port}/v1/cameras/door/metadata", key), timeout=10
        ) as feed:
            event = next(json.loads(line[6:]) for line in feed if line.startswith(b"data: "))
        assert event["counts"] == {"face": 1}
        assert len(event["objects"][0]["id"]) == 12 and event["objects"][0]["class"] == "face"
        hls = f"http://127.0.0.1:{port}/v1/cameras/door/hls"
        playlists: list[str] = []
        assert wait_for(
            lambda: "#EXTINF" in (playlists.append(text(f"{hls}/index.m3u8", key)) or playlists[-1]), 60
        )
        segment = next(line for line in playlists[-1].splitlines() if line.endswith(".ts"))
        (tmp_path / segment).write_bytes(
            urllib.request.urlopen(authorised(f"{hls}/{segment}", key), timeout=5).read()
        )
        with av.open(str(tmp_path / segment)) as ts:
            decoded = [f.to_ndarray(format="rgb24") for f in ts.decode(video=0)]
        assert decoded and decoded[0].shape == (H, W, 3)
        assert decoded[-1][y1 + 10 : y2 - 10, x1 + 10 : x2 - 10].astype(int).std(axis=(0, 1)).max() < 40
        assert text(f"{hls}/..%2F..%2Fcameras.yaml", key) == "", (
            "nothing but the playlist and segments is served"
        )
    finally:
        output = server.stop()
    assert "Traceback" not in output


def test_the_supervisor_restarts_a_killed_worker(still_face: tuple) -> None:
    clip, _ = still_face
    outputs = CameraOutputs()
    camera = CameraConfig(id="door", source=f"file://{clip}", loop=True)
    supervisor = Supervisor(outputs).start()
    supervisor.start_camera(camera, BUILTIN_PROFILES["public_space"])
    try:
        assert wait_for(lambda: outputs.snapshot("door") is not None, 90)
        first_pid = supervisor.pids()[0]
        os.kill(first_pid, signal.SIGKILL)
        assert wait_for(lambda: supervisor.pids()[0] != first_pid, 30)
        before = outputs.snapshot("door")
        assert before is not None
        assert wait_for(
            lambda: (f := outputs.snapshot("door")) is not None and f.sequence > before.sequence + 5, 90
        )
        assert supervisor.workers[0].restarts == 1
    finally:
        supervisor.stop()
