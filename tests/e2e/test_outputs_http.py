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
from PIL import Image

from orchestrator.control.app import create_app
from orchestrator.dataplane.live.outputs import CameraOutputs

W, H = 160, 96


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    outputs = CameraOutputs()
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
        create_app(outputs), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    threads = [threading.Thread(target=publish, daemon=True), threading.Thread(target=uv.run, daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    stop.set()
    uv.should_exit = True
    threads[1].join(10)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


def test_health(server: str) -> None:
    assert get(f"{server}/healthz")[:2] == (200, b'{"status":"ok"}')


def test_snapshot_is_the_newest_masked_frame_as_jpeg(server: str) -> None:
    status, body, kind = get(f"{server}/v1/cameras/cam1/snapshot.jpg")
    assert (status, kind) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(body)).size == (W, H)


def test_unknown_and_idle_cameras_get_a_reason(server: str) -> None:
    status, body, _ = get(f"{server}/v1/cameras/nope/snapshot.jpg")
    assert status == 404 and "no camera 'nope'" in json.loads(body)["detail"]
    status, body, _ = get(f"{server}/v1/cameras/idle/snapshot.jpg")
    assert status == 503 and "no masked frame yet" in json.loads(body)["detail"]


def test_a_real_client_decodes_the_mjpeg_stream(server: str) -> None:
    with av.open(f"{server}/v1/cameras/cam1/stream.mjpeg", format="mpjpeg", timeout=5) as stream:
        frames = []
        for frame in stream.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 3:
                break
    assert [f.shape for f in frames] == [(H, W, 3)] * 3
    assert not np.array_equal(frames[0], frames[2]), "each part is a new frame"


def test_a_real_client_reads_the_metadata_feed(server: str) -> None:
    with urllib.request.urlopen(f"{server}/v1/cameras/cam1/metadata", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = []
        for line in response:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
    assert [e["camera"] for e in events] == ["cam1", "cam1"]
    assert events[1]["pts"] > events[0]["pts"]
