"""deepstream_configs/ as shipped agrees with triton_models/; each kind of mismatch is one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.config_files import ConfigError
from orchestrator.dataplane.deepstream.config import (
    DeepStreamConfig,
    check_cameras,
    check_repository,
    load_deepstream_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "deepstream_configs"
MODELS = ROOT / "triton_models"
ENSEMBLE = MODELS / "cityveil_detect"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A copy of deepstream_configs/ to break."""
    return Path(shutil.copytree(CONFIGS, tmp_path / "deepstream_configs"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


@pytest.mark.skipif(not ENSEMBLE.is_dir(), reason="triton_models/cityveil_detect/ (the ensemble) is absent")
def test_shipped_configs_agree_with_the_model_repository() -> None:
    config = load_deepstream_config(CONFIGS, MODELS)
    assert config.settings.inference.model == ENSEMBLE.name
    assert config.grpc_url == "triton:8001"
    assert config.tracker["TargetManagement"]["maxShadowTrackingAge"] >= 1


@pytest.mark.parametrize(
    ("name", "old", "new", "reason"),
    [
        pytest.param(
            "pipeline.yaml",
            "  live_source: true",
            "  live_source: true\n  live_sorce: false",
            r"pipeline.yaml: mux.live_sorce: Extra inputs",
            id="unknown key",
        ),
        pytest.param(
            "pipeline.yaml",
            "width: 1920",
            "width: 1921",
            r"mux.width: Input should be a multiple of 2",
            id="odd surface width",
        ),
        pytest.param(
            "nvinferserver_capi.txt",
            'model_name: "cityveil_detect"',
            'model_name: "face_centerface"',
            r"nvinferserver_capi.txt: triton.model_name is 'face_centerface'",
            id="another model",
        ),
        pytest.param(
            "pipeline.yaml",
            "height: 1080",
            "height: 720",
            r"IMAGES dims must be the mux surface \[720, 1920, 3\]",
            id="input dims not the surface",
        ),
        pytest.param(
            "pipeline.yaml",
            "batch_size: 16",
            "batch_size: 32",
            r"max_batch_size 16 is below the mux batch size 32",
            id="batch above nvinferserver",
        ),
        pytest.param(
            "nvinferserver_grpc.txt",
            "enable_cuda_buffer_sharing: true",
            "enable_cuda_buffer_sharing: false",
            r"enable_cuda_buffer_sharing must be true",
            id="no CUDA buffer sharing",
        ),
        pytest.param(
            "nvinferserver_grpc.txt",
            "enable_cuda_buffer_sharing: true",
            "",
            r"nvinferserver_grpc.txt lacks grpc.enable_cuda_buffer_sharing",
            id="missing field",
        ),
        pytest.param(
            "tracker_nvdcf.yml",
            "maxShadowTrackingAge: 30",
            "maxShadowTrackingAge: 0",
            r"maxShadowTrackingAge must be at least 1",
            id="no shadow tracking",
        ),
        pytest.param(
            "nvinferserver_grpc.txt",
            "interval: 0",
            "interval: 2",
            r"input_control.interval is 2, pipeline.yaml says 0",
            id="another inference interval",
        ),
        pytest.param(
            "tracker_nvdcf.yml",
            "minDetectorConfidence: 0.03",
            "minDetectorConfidence: 0.2",
            r"minDetectorConfidence must be at most 0.0375",
            id="tracker drops accepted objects",
        ),
    ],
)
def test_a_broken_config_is_refused_with_its_reason(
    configs: Path, name: str, old: str, new: str, reason: str
) -> None:
    edit(configs / name, old, new)
    with pytest.raises(ConfigError, match=reason):
        load_deepstream_config(configs)


def test_a_repository_without_the_ensemble_is_named(configs: Path, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    with pytest.raises(ConfigError, match=r"no model 'cityveil_detect'"):
        load_deepstream_config(configs, tmp_path / "models")


def test_an_ensemble_with_a_smaller_batch_is_refused(configs: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "cityveil_detect").mkdir(parents=True)
    (models / "cityveil_detect" / "config.pbtxt").write_text(
        'name: "cityveil_detect"\nmax_batch_size: 8\n'
        'input [ { name: "IMAGES" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] } ]\n'
        'output [ { name: "DETECTIONS" data_type: TYPE_FP32 dims: [ -1, 6 ] } ]\n'
    )
    config = load_deepstream_config(configs)
    with pytest.raises(
        ConfigError, match=r"DETECTIONS is not TYPE_FP32 \[\.\.\., 7\]; max_batch_size 8 is below"
    ):
        check_repository(config, models)


def test_more_cameras_than_reserved_is_refused(configs: Path) -> None:
    edit(configs / "pipeline.yaml", "max_cameras: 32", "max_cameras: 2")
    config: DeepStreamConfig = load_deepstream_config(configs)
    cameras = [CameraConfig(id=f"cam{i}", source=f"rtsp://10.0.0.{i}/s") for i in range(3)]
    check_cameras(config, cameras[:2])
    with pytest.raises(ConfigError, match=r"3 cameras are registered; pipeline.yaml reserves 2"):
        check_cameras(config, cameras)
