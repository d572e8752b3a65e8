"""The orchestrator end to end: cameras registered over REST start streaming on the workers, changes apply
live, deletion stops them, and what happened is in an audit log that verifies; `kill -9` in a burst of
writes loses no acknowledged write and leaves a chain that verifies."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from databases import postgres_database
from PIL import Image
from polling import wait_for
from server_process import ServerProcess, cli, create_key, free_port

from orchestrator.samples import write_sample_video

W, H = 320, 180
# A privacy zone over the strip of tick marks below the face (the sample's only sharp background detail).
STRIP = [[0.0, 0.7], [1.0, 0.7], [1.0, 0.95], [0.0, 0.95]]


@pytest.fixture(scope="module")
def still_face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orchestrator") / "door.mp4"
    write_sample_video(path, W, H, frames=24, fps=12, face_px=64, audio=False, walking=False)
    return path


def detail(image: np.ndarray) -> float:
    """Mean horizontal gradient: what blur, pixelation or a solid fill take away."""
    return float(np.abs(np.diff(image.astype(int), axis=1)).mean())


def strip(image: np.ndarray) -> np.ndarray:
    return image[int(H * 0.7) + 4 : int(H * 0.95) - 4]


def test_rest_registration_runs_streams_live_and_audits_them(still_face: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin = create_key(data, "admin")
    server = ServerProcess(data, env={"CITYVEIL_SUMMARY_INTERVAL_S": "2"})
    try:
        status, body = server.request(
            "POST", "/v1/cameras", admin, {"id": "door", "source": f"file://{still_face}", "loop": True}
        )
        assert status == 201, body
        # A camera whose password must never show up, behind an address nothing answers on.
        secret_camera = {"id": "yard", "source": "rtsp://admin:hunter2secret@127.0.0.1:9/live"}
        assert server.request("POST", "/v1/cameras", admin, secret_camera)[0] == 201

        def snapshot() -> np.ndarray | None:
            status, raw = server.request("GET", "/v1/cameras/door/snapshot.jpg", admin)
            return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")) if status == 200 else None

        assert wait_for(lambda: snapshot() is not None, 90)
        before = snapshot()
        assert before is not None
        status, body = server.request("PATCH", "/v1/cameras/door", admin, {"privacy_zones": [STRIP]})
        assert status == 200, body
        # The zone applies to the running stream: the strip loses its detail without a restart.
        assert wait_for(
            lambda: (f := snapshot()) is not None and detail(strip(f)) < detail(strip(before)) / 3, 60
        )
        assert wait_for(
            lambda: server.request("GET", "/v1/cameras/door/status", admin)[1]["state"] == "live", 30
        )
        assert wait_for(
            lambda: server.request("GET", "/v1/audit?action=processing_summary", admin)[1]["entries"], 30
        )
        assert wait_for(
            lambda: server.request("GET", "/v1/audit?action=stream_failed", admin)[1]["entries"], 30
        )
        metrics = server.request("GET", "/metrics", admin)[1].decode()
        assert (
            'cityveil_streams{state="live"} 1.0' in metrics
            and 'cityveil_frames_out_total{camera="door"}' in metrics
        )
        assert server.request("DELETE", "/v1/cameras/door", admin)[0] == 204
        assert wait_for(lambda: server.request("GET", "/v1/cameras/door/snapshot.jpg", admin)[0] == 404, 10)
        assert wait_for(
            lambda: server.request("GET", "/v1/audit?action=stream_stopped", admin)[1]["entries"], 30
        )
        report = server.request("GET", "/v1/reports/cameras/door", admin)[1]
        assert report["frames_processed"] > 0 and report["model_versions"]["face"]
    finally:
        output = server.stop()
    assert "Traceback" not in output
    assert "yard" in output and "hunter2secret" not in output, (
        "the failing camera is logged, its password never"
    )
    verdict = cli(data, "audit", "verify")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    export = tmp_path / "audit.jsonl"
    assert cli(data, "audit", "export", str(export)).returncode == 0
    assert "hunter2secret" not in export.read_text()
    actions = {line.split('"action": "')[1].split('"')[0] for line in export.read_text().splitlines()[:-1]}
    for expected in (
        "key_created",
        "camera_created",
        "stream_started",
        "stream_live",
        "camera_updated",
        "stream_reconfigured",
        "processing_summary",
        "output_accessed",
        "camera_deleted",
        "stream_stopped",
    ):
        assert expected in actions, expected


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_kill_9_in_a_burst_of_writes_loses_no_acknowledged_write(tmp_path: Path, store: str) -> None:
    with contextlib.ExitStack() as stack:
        env = (
            {"CITYVEIL_DATABASE_URL": stack.enter_context(postgres_database())}
            if store == "postgresql"
            else {}
        )
        burst_then_kill(tmp_path / "data", env)


def burst_then_kill(data: Path, env: dict[str, str]) -> None:
    admin = create_key(data, "admin", env)
    server = ServerProcess(data, env=env)
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(number: int) -> None:
        n = 0
        while not stop.is_set():
            camera_id = f"cam{number}-{n}"
            # An address nothing listens on: the stream just retries, the registry is what is tested.
            body = {"id": camera_id, "source": "rtsp://127.0.0.1:9/none", "name": "burst"}
            status, _ = server.request("POST", "/v1/cameras", admin, body)
            if status == 201:
                acknowledged.append(camera_id)
            n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: len(acknowledged) >= 20, 60)
    server.process.kill()  # SIGKILL, mid-burst
    stop.set()
    for thread in threads:
        thread.join(30)
    server.process.communicate(timeout=30)
    time.sleep(0.5)
    verdict = cli(data, "audit", "verify", env=env)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    restarted = ServerProcess(data, env=env)
    try:
        status, cameras = restarted.request("GET", "/v1/cameras", admin)
        assert status == 200
        stored = {c["id"] for c in cameras}
        assert set(acknowledged) <= stored, f"lost: {sorted(set(acknowledged) - stored)}"
        created = restarted.request("GET", "/v1/audit?action=camera_created&limit=1000", admin)[1]["entries"]
        assert {e["camera_id"] for e in created} == stored, "every stored camera has its audit entry"
    finally:
        restarted.stop()


def test_a_registered_camera_is_served_over_rtsp(still_face: Path, tmp_path: Path) -> None:
    pytest.importorskip("gi", reason="the rtsp extra (PyGObject) is not installed")
    data = tmp_path / "data"
    admin = create_key(data, "admin")
    rtsp_port = free_port()
    server = ServerProcess(data, "--rtsp-port", str(rtsp_port))
    try:
        camera = {"id": "door", "source": f"file://{still_face}", "loop": True}
        status, body = server.request("POST", "/v1/cameras", admin, camera)
        assert status == 201, body
        assert body["outputs"]["rtsp"] == f"rtsp://127.0.0.1:{rtsp_port}/door"
        assert wait_for(lambda: server.request("GET", "/v1/cameras/door/snapshot.jpg", admin)[0] == 200, 90)
        with av.open(
            body["outputs"]["rtsp"], options={"rtsp_transport": "tcp", "timeout": "10000000"}
        ) as stream:
            frame = next(stream.decode(video=0)).to_ndarray(format="rgb24")
        assert frame.shape == (H, W, 3)
        played = server.request("GET", "/v1/audit?action=output_accessed", admin)[1]["entries"]
        assert any(e["details"] == {"output": "rtsp"} and e["actor"] == "rtsp:127.0.0.1" for e in played)
    finally:
        server.stop()
