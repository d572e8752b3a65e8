"""`cityveil models pull` on a wheel already in the cache: hashes checked, tensors renamed, atomic write."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from orchestrator.cli import main
from orchestrator.inference.detectors import CenterFaceDetector
from orchestrator.inference.fetch import FetchError, pull_model
from orchestrator.inference.onnx_backend import RuntimeOptions, load_model
from orchestrator.inference.repository import ModelRepository, RepositoryError
from orchestrator.samples import astronaut

CONFIG = """
name: "tiny"
backend: "onnxruntime"
max_batch_size: 4
input [ { name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
output [ { name: "probability" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
"""


def tiny_model() -> bytes:
    """A fixed-shape 3x3 convolution with export-style tensor names, like the shipped detectors."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out_0", TensorProto.FLOAT, [1, 3, 8, 8])
    weights = np.random.default_rng(0).normal(0, 0.1, size=(3, 3, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["out_0"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [conv], "tiny", [x], [y], initializer=[onnx.numpy_helper.from_array(weights, "w")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelRepository, bytes]:
    monkeypatch.setenv("CITYVEIL_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    member = tiny_model()
    wheel = wheels / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinypkg/model.onnx", member)
    folder = tmp_path / "repo" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(CONFIG)
    source = {
        "package": "tinypkg",
        "version": "1.0",
        "wheel": wheel.name,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "member": "tinypkg/model.onnx",
        "member_sha256": hashlib.sha256(member).hexdigest(),
        "model_version": 3,
        "rename": {"x": "image", "out_0": "probability"},
        "int8_calibration": "centerface",
    }
    (folder / "source.yaml").write_text(json.dumps(source))  # JSON is YAML
    return ModelRepository(tmp_path / "repo"), member


def test_pull_writes_a_dynamic_renamed_model_with_provenance(
    repository: tuple[ModelRepository, bytes],
) -> None:
    repo, _ = repository
    path = pull_model(repo.model("tiny"))
    assert path == repo.root / "tiny" / "3" / "model.onnx"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probability"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.ones((2, 3, 32, 48), dtype=np.float32)  # other batch and size than the export's
    assert session.run(None, {"image": batch})[0].shape == (2, 3, 32, 48)
    provenance = json.loads((path.parent / "provenance.json").read_text())
    assert provenance["package"] == "tinypkg==1.0"
    assert repo.model("tiny").serving_version() == 3
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "model.int8.onnx",
        "model.onnx",
        "provenance.json",
    ]


def test_pull_adds_an_int8_copy_that_agrees_with_the_float_model(
    repository: tuple[ModelRepository, bytes],
) -> None:
    repo, _ = repository
    path = pull_model(repo.model("tiny"))
    int8 = onnx.load(path.parent / "model.int8.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in int8.graph.node}
    image, _ = CenterFaceDetector.prepare([astronaut()], 0.25)  # a photograph, as the calibration saw them
    outputs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
        for p in (path, path.parent / "model.int8.onnx")
    ]
    spread = float(np.abs(outputs[0]).max())
    assert np.abs(outputs[0] - outputs[1]).mean() < 0.02 * spread
    assert json.loads((path.parent / "provenance.json").read_text())["int8"]["calibration"] == "centerface"


def test_a_member_that_does_not_match_its_pin_is_refused(repository: tuple[ModelRepository, bytes]) -> None:
    repo, _ = repository
    source = repo.root / "tiny" / "source.yaml"
    pins = json.loads(source.read_text())
    pins["member_sha256"] = "0" * 64
    source.write_text(json.dumps(pins))
    with pytest.raises(FetchError, match="pinned"):
        pull_model(repo.model("tiny"))
    assert not (repo.root / "tiny" / "3").exists() or not any((repo.root / "tiny" / "3").iterdir())


def test_models_cli_lists_and_reports_errors(
    repository: tuple[ModelRepository, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = repository
    assert main(["models", "pull", "--repository", str(repo.root)]) == 0
    assert main(["models", "list", "--repository", str(repo.root)]) == 0
    assert "tiny\tversions=[3]\tserving=3" in capsys.readouterr().out
    assert main(["models", "list", "nope", "--repository", str(repo.root)]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_a_model_file_changed_after_pull_is_refused(repository: tuple[ModelRepository, bytes]) -> None:
    repo, _ = repository
    path = pull_model(repo.model("tiny"))
    load_model(repo, "tiny", RuntimeOptions(precision="fp32"))  # intact: loads
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RepositoryError, match="models pull --force"):
        load_model(repo, "tiny", RuntimeOptions(precision="fp32"))
