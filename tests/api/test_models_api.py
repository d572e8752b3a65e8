"""Model versions over the API (embedded inference): upload with validation, activate, roll back, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from fakes import RecordingControl
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from orchestrator.cli import main
from orchestrator.core.detections import ObjectClass
from orchestrator.inference import canary
from orchestrator.inference.detectors import MODELS, Detector
from orchestrator.inference.onnx_backend import RuntimeOptions, load_model
from orchestrator.inference.repository import ModelRepository
from orchestrator.services.container import Services

FACE = "face_centerface"
MIN_PX = "cityveil_reliable_min_px"


def blind_centerface() -> bytes:
    """A model with CenterFace's tensors that finds nothing: it loads and runs, but masks no canary face."""
    zeros = helper.make_node("Mul", ["pooled", "zero"], ["heatmap"])
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled_all"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("ReduceMean", ["pooled_all", "axes"], ["pooled"], keepdims=1),
        zeros,
        helper.make_node("Concat", ["heatmap", "heatmap"], ["scale"], axis=1),
        helper.make_node("Concat", ["heatmap", "heatmap"], ["offset"], axis=1),
        helper.make_node("Concat", ["scale"] * 5, ["landmarks"], axis=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", None, "h4", "w4"])
        for name in ("heatmap", "scale", "offset", "landmarks")
    ]
    initializers = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(nodes, "blind", [image], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def upload(
    client: TestClient, headers: dict[str, str], data: bytes, name: str = FACE, config: str | None = None
) -> Any:
    extra = {"X-Cityveil-Config": config} if config is not None else {}
    return client.post(
        f"/v1/models/{name}/versions",
        content=data,
        headers={**headers, **extra, "Content-Type": "application/octet-stream"},
    )


def configs(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in [folder / "config.pbtxt", *(folder / "configs").glob("*.pbtxt")]}


def engine_min_px(root: Path) -> float:
    """The face detector's traits as the embedded engine loads the serving version."""
    model = load_model(ModelRepository(root), FACE, RuntimeOptions(device="cpu", precision="fp32"))
    detector: Detector = MODELS[ObjectClass.FACE][1](model)
    return detector.traits.reliable_min_px


class FailingLoad:
    def load(self, name: str) -> None:
        raise RuntimeError("failed to load 'face_centerface' version 2")

    def states(self) -> dict[tuple[str, int], str]:
        return {}


def actions(services: Services) -> list[str]:
    with services.db.read() as session:
        return [e["action"] for e in services.audit.entries(session) if e["action"].startswith("model.")]


def serving(client: TestClient, headers: dict[str, str], name: str = FACE) -> int:
    return next(m for m in client.get("/v1/models", headers=headers).json() if m["name"] == name)[
        "serving_version"
    ]


def test_models_are_listed_for_ml_engineers_only(client: TestClient, as_role: dict) -> None:
    assert client.get("/v1/models", headers=as_role["viewer"]).status_code == 403
    listed = client.get("/v1/models", headers=as_role["ml_engineer"]).json()
    assert {m["name"] for m in listed} == {FACE, "plate_ppocr_det"}
    face = next(m for m in listed if m["name"] == FACE)
    assert face["serving_version"] == 1 and face["versions"][0]["serving"] is True


def test_a_version_is_validated_activated_and_rolled_back(
    client: TestClient, as_role: dict, services: Services, control: RecordingControl
) -> None:
    engineer = as_role["ml_engineer"]
    weights = (services.models.repository.root / FACE / "1" / "model.onnx").read_bytes()
    added = upload(client, engineer, weights)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["version"] == 2 and body["validation"]["ok"] and body["validation"]["recall"] == 1.0
    assert serving(client, engineer) == 1  # uploaded is not serving

    activated = client.post(f"/v1/models/{FACE}/activate", json={"version": 2}, headers=engineer)
    assert activated.status_code == 200, activated.text
    assert activated.json()["serving_version"] == 2
    config = (services.models.repository.root / FACE / "configs" / "cpu.pbtxt").read_text()
    assert "version_policy: { specific: { versions: [ 2 ] } }" in config  # a restart serves it too
    assert control.calls == [("reload_models", "", None)]  # the embedded workers load it now

    assert (
        client.post(f"/v1/models/{FACE}/activate", json={"version": 2}, headers=engineer).status_code == 409
    )
    assert (
        client.post(f"/v1/models/{FACE}/activate", json={"version": 7}, headers=engineer).status_code == 404
    )
    assert client.post(f"/v1/models/{FACE}/rollback", headers=engineer).json()["serving_version"] == 1
    assert client.post(f"/v1/models/{FACE}/rollback", headers=engineer).status_code == 409
    assert actions(services) == ["model.version_added", "model.activated", "model.rolled_back"]


def test_broken_and_worse_versions_are_refused_and_audited(
    client: TestClient, as_role: dict, services: Services
) -> None:
    engineer = as_role["ml_engineer"]
    broken = upload(client, engineer, b"not an onnx file")
    assert broken.status_code == 422
    assert "is refused" in broken.json()["detail"][0]["msg"]
    worse = upload(client, engineer, blind_centerface())
    assert worse.status_code == 422
    assert "masked recall 0.000" in worse.json()["detail"][0]["msg"]
    assert not (services.models.repository.root / FACE / "2").exists()  # nothing half-kept
    assert actions(services) == ["model.version_rejected", "model.version_rejected"]
    assert serving(client, engineer) == 1


def test_a_version_changed_after_validation_is_not_activated(
    client: TestClient, as_role: dict, services: Services
) -> None:
    engineer = as_role["ml_engineer"]
    folder = services.models.repository.root / FACE
    assert upload(client, engineer, (folder / "1" / "model.onnx").read_bytes()).status_code == 201
    path = folder / "2" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    refused = client.post(f"/v1/models/{FACE}/activate", json={"version": 2}, headers=engineer)
    assert refused.status_code == 422 and "changed after its validation" in refused.text
    assert serving(client, engineer) == 1


def test_a_version_brings_its_config_parameters_and_rollback_restores_them(
    client: TestClient, as_role: dict, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    engineer = as_role["ml_engineer"]
    root = services.models.repository.root
    folder = root / FACE
    measured: list[float] = []  # the reliable size of each detector the canary measures

    def recording(detector: Detector, frames: list[canary.CanaryFrame]) -> float:
        measured.append(detector.traits.reliable_min_px)
        return real_recall(detector, frames)

    real_recall = canary.masked_recall
    monkeypatch.setattr(canary, "masked_recall", recording)
    change = json.dumps({"parameters": {MIN_PX: 16}})
    added = upload(client, engineer, (folder / "1" / "model.onnx").read_bytes(), config=change)
    assert added.status_code == 201, added.text
    assert added.json()["parameters"] == {MIN_PX: "16"} and added.json()["validation"]["ok"]
    assert measured == [16.0, 12.0]  # the upload with its change, then the serving version
    listed = next(m for m in client.get("/v1/models", headers=engineer).json() if m["name"] == FACE)
    assert [v["parameters"] for v in listed["versions"]] == [{}, {MIN_PX: "16"}]
    assert f'key: "{MIN_PX}" value: {{ string_value: "12" }}' in (folder / "config.pbtxt").read_text()

    workers = services.models.control
    monkeypatch.setattr(services.models, "control", FailingLoad())
    before = configs(folder)
    activate = {"json": {"version": 2}, "headers": engineer}
    failed = client.post(f"/v1/models/{FACE}/activate", **activate)
    assert failed.status_code == 409 and configs(folder) == before  # restored exactly
    monkeypatch.setattr(services.models, "control", workers)

    activated = client.post(f"/v1/models/{FACE}/activate", **activate)
    assert activated.status_code == 200, activated.text
    line = f'parameters {{ key: "{MIN_PX}" value: {{ string_value: "16" }} }}'
    assert all(line in text for text in configs(folder).values())
    assert engine_min_px(root) == 16.0

    assert client.post(f"/v1/models/{FACE}/rollback", headers=engineer).json()["serving_version"] == 1
    assert f'key: "{MIN_PX}" value: {{ string_value: "12" }}' in (folder / "config.pbtxt").read_text()
    assert engine_min_px(root) == 12.0
    with services.db.read() as session:
        details = {e["action"]: e["details"] for e in services.audit.entries(session)}
    assert details["model.version_added"]["parameters"] == {MIN_PX: "16"}
    assert details["model.activation_failed"]["parameters"][MIN_PX] == "16"
    assert details["model.activated"]["parameters"][MIN_PX] == "16"
    assert details["model.rolled_back"]["parameters"][MIN_PX] == "12"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ('{"parameters": {"precision": "fp32"}}', "parameter 'precision' cannot change per version"),
        ('{"parameters": {"cityveil_reliable_min_px": 0}}', "must be a number from 1 to 1024, not 0"),
        ('{"parameters": {"cityveil_reliable_min_px": "16"}}', "must be a number from 1 to 1024"),
        ('{"parameters": {"cityveil_reliable_min_px": 600}}', "must stay below cityveil_reliable_max_px"),
        ('{"input": [{"name": "x"}]}', 'may only change "parameters"'),
        ("min_px=16", "must be JSON"),
    ],
)
def test_config_changes_outside_the_allowed_set_are_refused_and_nothing_is_written(
    client: TestClient, as_role: dict, services: Services, config: str, reason: str
) -> None:
    folder = services.models.repository.root / FACE
    before = configs(folder)
    weights = (folder / "1" / "model.onnx").read_bytes()
    refused = upload(client, as_role["ml_engineer"], weights, config=config)
    assert refused.status_code == 422 and reason in refused.json()["detail"][0]["msg"]
    assert configs(folder) == before
    assert not (folder / "2").exists() and not (folder / "versions.json").exists()
    assert actions(services) == []


def test_the_config_header_is_described_in_openapi(client: TestClient) -> None:
    route = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/versions"]["post"]
    header = next(p for p in route["parameters"] if p["name"] == "X-Cityveil-Config")
    assert header["in"] == "header" and MIN_PX in header["description"]


def test_only_detector_models_take_versions(client: TestClient, as_role: dict) -> None:
    response = upload(client, as_role["ml_engineer"], b"x", name="cityveil_detect")
    assert response.status_code == 404 and "no detector model" in response.text


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["models", "add", FACE, "m.onnx"], "needs --server URL and --key KEY"),
        (
            ["models", "activate", FACE, "two", "--server", "http://127.0.0.1:9", "--key", "k"],
            "must be a number",
        ),
        (["models", "rollback", "--server", "http://127.0.0.1:9", "--key", "k"], "usage: cityveil models"),
        (
            ["models", "add", FACE, "/nonexistent.onnx", "--server", "http://127.0.0.1:9", "--key", "k"],
            "no ONNX",
        ),
        (
            ["models", "add", FACE, __file__, "--param", "16", "--server", "http://x:9", "--key", "k"],
            "--param takes KEY=VALUE",
        ),
    ],
)
def test_models_cli_refuses_bad_input_in_one_sentence(
    argv: list[str], sentence: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITYVEIL_SERVER", raising=False)
    monkeypatch.delenv("CITYVEIL_API_KEY", raising=False)
    assert main(argv) == 2
    assert sentence in capsys.readouterr().err


def test_models_cli_says_when_the_server_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "rollback", FACE, "--server", "http://127.0.0.1:9", "--key", "k"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
