"""The Triton backend in the frame step: shared memory or not, deadlines that fail closed, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.cli import main
from orchestrator.core.detections import ObjectClass
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.inference.triton_options import SharedMemory, TritonOptions
from orchestrator.inference.triton_server import TritonServer


def test_shared_memory_and_the_wire_give_the_same_detections(
    triton_server: TritonServer, sample_frames: list[np.ndarray]
) -> None:
    found = []
    for shared in (SharedMemory.SYSTEM, SharedMemory.NONE):
        options = TritonOptions(url=triton_server.url, shared_memory=shared)
        engine = EmbeddedEngine(classes=[ObjectClass.FACE], triton=options)
        try:
            found.append(engine.detectors[ObjectClass.FACE].detect(list(sample_frames), 1.0, 0.5))
        finally:
            engine.close()
    assert len(found[0]) >= 2
    np.testing.assert_array_equal(found[0].boxes, found[1].boxes)


def test_a_missed_deadline_fails_the_frames_closed(
    triton_server: TritonServer, sample_frames: list[np.ndarray]
) -> None:
    engine = EmbeddedEngine(triton=TritonOptions(url=triton_server.url, timeout_s=0.001))
    profile = BUILTIN_PROFILES["public_space"]
    stream = engine.stream(CameraContext(profile=profile, width=640, height=360))
    try:
        results = stream.process([frame.copy() for frame in sample_frames])
    finally:
        engine.close()
    assert all(r.failed for r in results)
    for result in results:  # masked whole, or dropped: never published as they were
        assert result.image is None or (result.image == np.asarray(SOLID_COLOUR, np.uint8)).all()


def test_anonymize_through_triton_masks_the_face(
    triton_server: TritonServer, sample_frames: list[np.ndarray], tmp_path: Path
) -> None:
    Image.fromarray(sample_frames[1]).save(tmp_path / "photo.png")
    report = tmp_path / "report.json"
    url = f"triton://{triton_server.url}"
    argv = [
        "anonymize",
        str(tmp_path / "photo.png"),
        "-o",
        str(tmp_path / "out"),
        "-q",
        "--report",
        str(report),
    ]
    assert main([*argv, "--inference", url]) == 0
    assert '"face": 1' in report.read_text()
    assert "face_centerface:1:triton" in report.read_text()


@pytest.mark.parametrize("value", ["triton://", "http://127.0.0.1:8001", "triton://host", "onnx"])
def test_a_bad_inference_backend_is_a_usage_error(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.png").write_bytes(b"")
    assert main(["anonymize", str(tmp_path / "in.png"), "-o", str(tmp_path), "--inference", value]) == 2
    assert "triton://HOST:PORT" in capsys.readouterr().err
