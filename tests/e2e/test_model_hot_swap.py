"""Hot swap under load: while cameras stream (through a real Triton server, or the embedded engine), face
detector v2 is uploaded and activated; no inference fails, no frame leaves unmasked, and v2 shows in
/v1/models, the metrics and the audit log. A version Triton cannot load is refused at activation and the
serving version keeps serving. Both audited."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from model_repository import repository_copy, triton_install
from PIL import Image
from polling import wait_for
from server_process import ServerProcess, create_key

from orchestrator.cli import main
from orchestrator.inference.triton_server import TritonServer
from orchestrator.samples import write_sample_video

W, H = 320, 180
FACE = "face_centerface"


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[TritonServer]:
    install = triton_install()
    repository = repository_copy(tmp_path / "models")
    with TritonServer(repository, install=install, log_file=tmp_path / "tritonserver.log") as server:
        yield server


def metric_sum(metrics: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", metrics, re.MULTILINE))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "door.mp4"
    write_sample_video(path, W, H, frames=24, fps=12, face_px=64, audio=False, walking=False)
    return path


def assert_face_masked(server: ServerProcess, key: str) -> None:
    status, raw = server.request("GET", "/v1/cameras/door/snapshot.jpg", key)
    assert status == 200
    frame = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(int)
    face_box = frame[H // 2 - 22 : H // 2 + 22, W // 2 - 22 : W // 2 + 22]
    assert face_box.std(axis=(0, 1)).max() < 40, "the face is still detailed: a frame left unmasked"


def test_activating_a_new_face_detector_under_load(
    triton: TritonServer, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    admin = create_key(data, "admin")
    engineer = create_key(data, "ml_engineer")
    env = {
        "CITYVEIL_INFERENCE": f"triton://{triton.url}",
        "CITYVEIL_MODEL_REPOSITORY": str(triton.repository),
        "CITYVEIL_SUMMARY_INTERVAL_S": "2",
    }
    server = ServerProcess(data, env=env)
    try:
        for camera in ("door", "hall"):
            body = {"id": camera, "source": f"file://{clip}", "loop": True}
            assert server.request("POST", "/v1/cameras", admin, body)[0] == 201

        def metrics() -> str:
            return server.request("GET", "/metrics", admin)[1].decode()

        assert wait_for(lambda: metric_sum(metrics(), "cityveil_frames_out_total") > 20, 90)
        assert f"face={FACE}:1:triton" in metrics()

        def models(*args: str) -> int:  # the CLI, as an ML engineer runs it against the server
            return main(["models", *args, "--server", server.url, "--key", engineer])

        weights = triton.repository / FACE / "1" / "model.onnx"
        assert models("add", FACE, str(weights), "--param", "cityveil_reliable_min_px=16") == 0
        assert "version 2 added" in capsys.readouterr().out
        assert models("activate", FACE, "2") == 0
        config = triton.repository / FACE / "configs" / "cpu.pbtxt"
        assert 'key: "cityveil_reliable_min_px" value: { string_value: "16" }' in config.read_text()
        out_at_swap = metric_sum(metrics(), "cityveil_frames_out_total")

        listed = server.request("GET", "/v1/models", engineer)[1]
        face = next(m for m in listed if m["name"] == FACE)
        assert face["serving_version"] == 2
        assert next(v for v in face["versions"] if v["version"] == 2)["server_state"] == "READY"
        assert wait_for(lambda: f"face={FACE}:2:triton" in metrics(), 30)
        assert wait_for(lambda: metric_sum(metrics(), "cityveil_frames_out_total") > out_at_swap + 20, 60)

        # A version that validates but that Triton cannot load: refused, v2 keeps serving.
        assert models("add", FACE, str(weights)) == 0
        (triton.repository / FACE / "3" / "model.py").write_text("raise RuntimeError('cannot load')\n")
        capsys.readouterr()
        assert models("activate", FACE, "3") == 1
        assert "version 2 keeps serving" in capsys.readouterr().err
        listed = server.request("GET", "/v1/models", engineer)[1]
        assert next(m for m in listed if m["name"] == FACE)["serving_version"] == 2
        out_after = metric_sum(metrics(), "cityveil_frames_out_total")
        assert wait_for(lambda: metric_sum(metrics(), "cityveil_frames_out_total") > out_after + 20, 60)

        final = metrics()
        assert 'cityveil_frames_failed_total{camera="door"}' in final
        assert metric_sum(final, "cityveil_frames_failed_total") == 0  # no inference failed
        assert_face_masked(server, admin)
        audit = server.request("GET", "/v1/audit?action=model.activated", admin)[1]["entries"]
        assert [e["details"]["version"] for e in audit] == [2] and audit[0]["actor"]
        # After Triton's swap the workers re-read the configs (the v2 upload changed its reliable size).
        reloaded = server.request("GET", "/v1/audit?action=models_reloaded", admin)[1]["entries"]
        assert {e["camera_id"] for e in reloaded} >= {"door"}
        failed = server.request("GET", "/v1/audit?action=model.activation_failed", admin)[1]["entries"]
        assert (
            failed and failed[0]["details"]["version"] == 3 and "cannot load" in failed[0]["details"]["error"]
        )

        assert models("rollback", FACE) == 0  # a second hot swap, back to v1
        assert 'key: "cityveil_reliable_min_px" value: { string_value: "12" }' in config.read_text()
        assert wait_for(lambda: f"face={FACE}:1:triton" in metrics(), 30)
        assert metric_sum(metrics(), "cityveil_frames_failed_total") == 0
    finally:
        server.stop()


def test_the_embedded_workers_load_an_activated_version_while_streaming(clip: Path, tmp_path: Path) -> None:
    repository = repository_copy(tmp_path / "models")
    data = tmp_path / "data"
    admin = create_key(data, "admin")
    env = {"CITYVEIL_MODEL_REPOSITORY": str(repository), "CITYVEIL_SUMMARY_INTERVAL_S": "2"}
    server = ServerProcess(data, env=env)
    try:
        body = {"id": "door", "source": f"file://{clip}", "loop": True}
        assert server.request("POST", "/v1/cameras", admin, body)[0] == 201

        def metrics() -> str:
            return server.request("GET", "/metrics", admin)[1].decode()

        assert wait_for(lambda: f"face={FACE}:1:int8" in metrics(), 90)
        weights = repository / FACE / "1" / "model.onnx"
        assert main(["models", "add", FACE, str(weights), "--server", server.url, "--key", admin]) == 0
        status, body = server.request("POST", f"/v1/models/{FACE}/activate", admin, {"version": 2})
        assert status == 200, body
        # The upload has no int8 copy: the workers now run version 2 in fp32.
        assert wait_for(lambda: f"face={FACE}:2:fp32" in metrics(), 60)
        out_at_swap = metric_sum(metrics(), "cityveil_frames_out_total")
        assert wait_for(lambda: metric_sum(metrics(), "cityveil_frames_out_total") > out_at_swap + 20, 60)
        assert metric_sum(metrics(), "cityveil_frames_failed_total") == 0
        assert_face_masked(server, admin)
    finally:
        server.stop()
