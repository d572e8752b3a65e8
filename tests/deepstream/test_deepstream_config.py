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


def test_unknown_key_in_pipeline_yaml_is_refused(configs: Path) -> None:
    edit(configs / "pipeline.yaml", "  live_source: true", "  live_source: true\n  live_sorce: false")
    with pytest.raises(ConfigError, match=r"pipeline.yaml: mux.live_sorce: Extra inputs"):
        load_deepstream_config(configs)


def test_odd_surface_width_is_refused(configs: Path) -> None:
    edit(configs / "pipeline.yaml", "width: 1920", "width: 1921")
    with pytest.raises(ConfigError, match=r"mux.width: Input should be a multiple of 2"):
        load_deepstream_config(configs)


def test_nvinferserver_naming_another_model_is_refused(configs: Path) -> None:
    edit(configs / "nvinferserver_capi.txt", 'model_name: "cityveil_detect"', 'model_name: "face_centerface"')
    with pytest.raises(ConfigError, match=r"nvinferserver_capi.txt: triton.model_name is 'face_centerface'"):
        load_deepstream_config(configs)


def test_input_dims_must_be_the_mux_surface(configs: Path) -> None:
    edit(configs / "pipeline.yaml", "height: 1080", "height: 720")
    with pytest.raises(ConfigError, match=r"IMAGES dims must be the mux surface \[720, 1920, 3\]"):
        load_deepstream_config(configs)


def test_batch_above_nvinferserver_max_batch_is_refused(configs: Path) -> None:
    edit(configs / "pipeline.yaml", "batch_size: 16", "batch_size: 32")
    with pytest.raises(ConfigError, match=r"max_batch_size 16 is below the mux batch size 32"):
        load_deepstream_config(configs)


def test_grpc_without_cuda_buffer_sharing_is_refused(configs: Path) -> None:
    edit(
        configs / "nvinferserver_grpc.txt",
        "enable_cuda_buffer_sharing: true",
        "enable_cuda_buffer_sharing: false",
    )
    with pytest.raises(ConfigError, match=r"enable_cuda_buffer_sharing must be true"):
        load_deepstream_config(configs)


def test_a_missing_field_is_named(configs: Path) -> None:
    edit(configs / "nvinferserver_grpc.txt", "enable_cuda_buffer_sharing: true", "")
    with pytest.raises(ConfigError, match=r"nvinferserver_grpc.txt lacks grpc.enable_cuda_buffer_sharing"):
        load_deepstream_config(configs)


def test_tracker_without_shadow_tracking_is_refused(configs: Path) -> None:
    edit(configs / "tracker_nvdcf.yml", "maxShadowTrackingAge: 30", "maxShadowTrackingAge: 0")
    with pytest.raises(ConfigError, match=r"maxShadowTrackingAge must be at least 1"):
        load_deepstream_config(configs)


def test_an_inference_interval_other_than_the_pipelines_is_refused(configs: Path) -> None:
    edit(configs / "nvinferserver_grpc.txt", "interval: 0", "interval: 2")
    with pytest.raises(ConfigError, match=r"input_control.interval is 2, pipeline.yaml says 0"):
        load_deepstream_config(configs)


def test_a_tracker_dropping_objects_a_plan_accepts_is_refused(configs: Path) -> None:
    edit(configs / "tracker_nvdcf.yml", "minDetectorConfidence: 0.03", "minDetectorConfidence: 0.2")
    with pytest.raises(ConfigError, match=r"minDetectorConfidence must be at most 0.0375"):
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
