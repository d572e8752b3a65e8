"""docker-compose.gpu.yml agrees with what the services read: model names, ports, mounted paths, images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from orchestrator.dataplane.deepstream.config import DeepStreamConfig, load_deepstream_config

ROOT = Path(__file__).resolve().parents[2]
TRITON_GRPC_PORT = 8001  # tritonserver's default; the compose file does not move it


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())


@pytest.fixture(scope="module")
def config() -> DeepStreamConfig:
    return load_deepstream_config(ROOT / "deepstream_configs")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts."""
    binds = [v.split(":") for v in service.get("volumes", []) if v.startswith("./")]
    return {container: host for host, container, *_ in binds}


def dockerfile_base(service: dict[str, Any]) -> str:
    text = (ROOT / service["build"]["dockerfile"]).read_text()
    return re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_the_four_services_and_every_mounted_path_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"triton", "dataplane", "orchestrator", "postgres"}
    for name, service in services.items():
        for host in mounts(service).values():
            assert (ROOT / host).exists(), f"{name} mounts {host}, which is not in the repository"


def test_triton_serves_the_ensemble_the_pipeline_calls(
    compose: dict[str, Any], config: DeepStreamConfig
) -> None:
    triton = compose["services"]["triton"]
    command = triton["command"]
    assert "--model-control-mode=explicit" in command
    assert f"--load-model={config.settings.inference.model}" in command
    repository = next(c.split("=", 1)[1] for c in command if c.startswith("--model-repository="))
    assert mounts(triton)[repository] == "./triton_models"
    assert (ROOT / "triton_models" / config.settings.inference.model / "config.pbtxt").is_file()
    assert "v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert dockerfile_base(triton).startswith("nvcr.io/nvidia/tritonserver:")
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    url = urlparse(f"grpc://{config.grpc_url}")
    assert (url.hostname, url.port) == ("triton", TRITON_GRPC_PORT)
    assert not any(c.startswith("--grpc-port") for c in command)


def test_the_dataplane_reads_the_configs_and_publishes_rtsp(
    compose: dict[str, Any], config: DeepStreamConfig
) -> None:
    dataplane = compose["services"]["dataplane"]
    environment = dataplane["environment"]
    assert mounts(dataplane)[environment["CITYVEIL_DEEPSTREAM_CONFIGS"]] == "./deepstream_configs"
    capi_root = config.nvinferserver["capi"]["infer_config"][0]["backend"][0]["triton"][0]["model_repo"][0][
        "root"
    ][0]
    assert mounts(dataplane)[capi_root] == "./triton_models"
    assert environment["CITYVEIL_MODEL_REPOSITORY"] == capi_root
    assert f"{config.settings.rtsp.port}:{config.settings.rtsp.port}" in dataplane["ports"]
    assert re.match(r"nvcr\.io/nvidia/deepstream:7\.\d+-triton", dockerfile_base(dataplane))
    assert dataplane["depends_on"]["triton"]["condition"] == "service_healthy"
    assert dataplane["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_cuda_buffer_sharing_can_work_between_the_two_containers(compose: dict[str, Any]) -> None:
    """CUDA IPC fails between processes with the same PID: the containers' main processes share the host's
    PID namespace (Triton's client documentation asks for it with CUDA shared memory)."""
    services = compose["services"]
    assert services["triton"]["pid"] == services["dataplane"]["pid"] == "host"


def test_the_api_and_the_dataplane_share_the_store_and_the_rtsp_port(
    compose: dict[str, Any], config: DeepStreamConfig
) -> None:
    services = compose["services"]
    api, dataplane, postgres = services["orchestrator"], services["dataplane"], services["postgres"]
    for key in ("CITYVEIL_DATABASE_URL", "CITYVEIL_SECRET_KEY"):
        assert api["environment"][key] == dataplane["environment"][key]
    url = urlparse(re.sub(r"\$\{[^}]*\}", "secret", api["environment"]["CITYVEIL_DATABASE_URL"]))
    assert (url.hostname, url.port, url.path.lstrip("/")) == (
        "postgres",
        5432,
        postgres["environment"]["POSTGRES_DB"],
    )
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert api["environment"]["CITYVEIL_RTSP_PORT"] == str(config.settings.rtsp.port)
    assert f"{api['environment']['CITYVEIL_PORT']}:8080" in api["ports"]
    assert compose["networks"]["backend"]["internal"] is True
    assert "ports" not in services["triton"] and "ports" not in postgres  # never published on the host
