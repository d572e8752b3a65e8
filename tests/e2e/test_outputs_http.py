"""Camera outputs over real HTTP: uvicorn serves the app, urllib and PyAV read it as a VMS would."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import av
import numpy as np
import pytest
import uvicorn
from fakes import RecordingControl
from PIL import Image

from orchestrator.control.app import create_app
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.services.container import open_services
from orchestrator.services.keys import Role
from orchestrator.settings import ServerSettings

W, H = 160, 96


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    outputs = CameraOutputs()
    services = open_services(
        ServerSettings(data_dir=tmp_path_factory.mktemp("data")), RecordingControl(outputs)
    )
    viewer = services.keys.create(Role.VIEWER)
    outputs.register("cam1")
    outputs.register("idle")  # registered, nothing published yet
    stop = threading.Event()

    def publish() -> None:  # a moving bright square, 25 frames per second
        n = 0
        while not stop.is_set():
            frame = np.full((H, W, 3), 40, dtype=np.uint8)
            frame[30:60, (n * 4) % (W - 30) :][:, :30] = 230
            outputs.publish("cam1", frame, n / 25)
            outputs.publish_metadata("cam1", {"camera": "cam1", "pts": n / 25, "objects": [], "counts": {}})
            n += 1
            time.sleep(0.04)

    port = free_port()
    config = uvicorn.Config(
        create_app(services, outputs),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    uv = uvicorn.Server(config)
    threads = [threading.Thread(target=publish, daemon=True), threading.Thread(target=uv.run, daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    # urllib and PyAV (FFmpeg's `headers` option) send the viewer's key, as a VMS would.
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", f"Bearer {viewer}")]
    urllib.request.install_opener(opener)
    yield f"http://127.0.0.1:{port}", viewer
    urllib.request.install_opener(urllib.request.build_opener())
    stop.set()
    uv.should_exit = True
    threads[1].join(10)
    services.close()


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


def test_health(server: tuple[str, str]) -> None:
    base, _key = server
    assert get(f"{base}/healthz")[:2] == (200, b'{"status":"ok"}')


def test_snapshot_is_the_newest_masked_frame_as_jpeg(server: tuple[str, str]) -> None:
    base, _key = server
    status, body, kind = get(f"{base}/v1/cameras/cam1/snapshot.jpg")
    assert (status, kind) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(body)).size == (W, H)


def test_unknown_and_idle_cameras_get_a_reason(server: tuple[str, str]) -> None:
    base, _key = server
    status, body, _ = get(f"{base}/v1/cameras/nope/snapshot.jpg")
    assert status == 404 and "no camera 'nope'" in json.loads(body)["detail"]
    status, body, _ = get(f"{base}/v1/cameras/idle/snapshot.jpg")
    assert status == 503 and "no masked frame yet" in json.loads(body)["detail"]


def test_a_real_client_decodes_the_mjpeg_stream(server: tuple[str, str]) -> None:
    base, key = server
    url, auth = f"{base}/v1/cameras/cam1/stream.mjpeg", {"headers": f"Authorization: Bearer {key}\r\n"}
    with av.open(url, format="mpjpeg", timeout=5, options=auth) as stream:
        frames = []
        for frame in stream.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 3:
                break
    assert [f.shape for f in frames] == [(H, W, 3)] * 3
    assert not np.array_equal(frames[0], frames[2]), "each part is a new frame"


def test_a_real_client_reads_the_metadata_feed(server: tuple[str, str]) -> None:
    base, _key = server
    with urllib.request.urlopen(f"{base}/v1/cameras/cam1/metadata", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = []
        for line in response:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
    assert [e["camera"] for e in events] == ["cam1", "cam1"]
    assert events[1]["pts"] > events[0]["pts"]


def test_outputs_need_a_viewer_key(server: tuple[str, str]) -> None:
    base, _ = server
    anonymous = urllib.request.Request(f"{base}/v1/cameras/cam1/snapshot.jpg", headers={"Authorization": ""})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener().open(anonymous, timeout=5)
    assert refused.value.code == 401
