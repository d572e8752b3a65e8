"""`deepstream_configs/`: the DeepStream engine's settings, read strictly and cross-checked before a pipeline
is built against the nvinferserver configs, the tracker config, the Triton model repository and the
cameras. A mistake is one sentence naming the file and the field, at start-up rather than as a pipeline
that stalls on a GPU node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from ...core.camera_settings import MAX_CAMERAS, CameraConfig
from ...core.config_files import ConfigError, load_model_file
from ...core.policy import LOWEST_THRESHOLD
from ...core.profiles import Strict
from ...inference.pbtxt import PbtxtError, parse_pbtxt
from ...inference.repository import ModelRepository, RepositoryError

SETTINGS_FILE = "pipeline.yaml"
ENSEMBLE_INPUT = "IMAGES"  # UINT8 [batch, H, W, 3] RGB (the contract with the Triton ensemble)
ENSEMBLE_OUTPUT = "DETECTIONS"  # FP32 [batch, K, 7]: frame index, x1, y1, x2, y2, score, class


class SourceSettings(Strict):
    element: Literal["nvurisrcbin", "nvmultiurisrcbin"] = "nvurisrcbin"
    max_cameras: int = Field(ge=1, le=MAX_CAMERAS, description="mux pads reserved")
    reconnect_interval_s: int = Field(default=10, ge=1, le=300)


class MuxSettings(Strict):
    batch_size: int = Field(ge=1, le=64)
    width: int = Field(ge=64, le=7680, multiple_of=2)  # NV12 and the encoder need even sizes
    height: int = Field(ge=64, le=4320, multiple_of=2)
    batched_push_timeout_us: int = Field(ge=1000, le=1_000_000)
    live_source: bool = True


class InferenceSettings(Strict):
    mode: Literal["grpc", "capi"]
    model: str = Field(min_length=1, max_length=128)
    grpc_config: str
    capi_config: str
    interval: int = Field(default=0, ge=0, le=30)

    @property
    def config_file(self) -> str:
        return self.grpc_config if self.mode == "grpc" else self.capi_config


class TrackerSettings(Strict):
    library: str = Field(min_length=1)
    config: str
    width: int = Field(ge=32, le=3840, multiple_of=32)
    height: int = Field(ge=32, le=2176, multiple_of=32)


class EncoderSettings(Strict):
    bitrate_bps: int = Field(ge=100_000, le=100_000_000)
    iframe_interval: int = Field(ge=1, le=300)


class RtspSettings(Strict):
    port: int = Field(ge=1, le=65535)
    udp_base_port: int = Field(ge=1024, le=65535 - MAX_CAMERAS)


class DeepStreamSettings(Strict):
    sources: SourceSettings
    mux: MuxSettings
    inference: InferenceSettings
    tracker: TrackerSettings
    encoder: EncoderSettings
    rtsp: RtspSettings


@dataclass(frozen=True)
class DeepStreamConfig:
    """The settings, with the files they name already read and checked."""

    folder: Path
    settings: DeepStreamSettings
    nvinferserver: dict[str, dict[str, list[Any]]]  # mode -> parsed config (both modes are checked)
    tracker: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def grpc_url(self) -> str:
        triton = _one(self.nvinferserver["grpc"], "infer_config", "backend", "triton")
        return str(_one(triton, "grpc", "url"))


def _one(message: dict[str, list[Any]], *names: str) -> Any:
    """The single value at a path of nested protobuf-text fields (KeyError naming the path if absent)."""
    value: Any = message
    for depth, name in enumerate(names):
        if name not in value:
            raise KeyError(".".join(names[: depth + 1]))
        value = value[name][0]
    return value


def _read_nvinferserver(path: Path) -> dict[str, list[Any]]:
    try:
        return parse_pbtxt(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read nvinferserver config {path}: {exc.strerror}") from exc
    except PbtxtError as exc:
        raise ConfigError(f"nvinferserver config {path} is not protobuf text: {exc}") from exc


def _read_tracker(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read tracker config {path}: {exc.strerror}") from exc
    # NvDCF files open with OpenCV's `%YAML:1.0` directive, which is not YAML's own `%YAML 1.0`.
    body = text.split("\n", 1)[1] if text.startswith("%YAML:") else text
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise ConfigError(f"tracker config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"tracker config {path} must hold sections (BaseConfig, TargetManagement...)")
    shadow = (data.get("TargetManagement") or {}).get("maxShadowTrackingAge")
    if not isinstance(shadow, int) or shadow < 1:
        raise ConfigError(
            f"tracker config {path}: TargetManagement.maxShadowTrackingAge must be at least 1 "
            "(a missed face keeps its track through shadow tracking)"
        )
    confidence = (data.get("BaseConfig") or {}).get("minDetectorConfidence", 0.0)
    if not isinstance(confidence, (int, float)) or confidence > LOWEST_THRESHOLD:
        raise ConfigError(
            f"tracker config {path}: BaseConfig.minDetectorConfidence must be at most {LOWEST_THRESHOLD:g}, "
            "the lowest threshold a camera's plan can set (the probes apply the real thresholds)"
        )
    return data


def _check_nvinferserver(
    path: Path, config: dict[str, list[Any]], settings: DeepStreamSettings, mode: str
) -> None:
    mux, model = settings.mux, settings.inference.model
    try:
        infer = _one(config, "infer_config")
        backend = _one(infer, "backend")
        triton = _one(backend, "triton")
        named, batch = _one(triton, "model_name"), _one(infer, "max_batch_size")
        inputs, outputs = backend.get("inputs", []), backend.get("outputs", [])
        if mode == "grpc":
            sharing = _one(triton, "grpc", "enable_cuda_buffer_sharing")
        else:
            _one(triton, "model_repo", "root")
    except KeyError as exc:
        raise ConfigError(f"nvinferserver config {path} lacks {exc.args[0]}") from None
    problems = []
    if named != model:
        problems.append(f"triton.model_name is {named!r}, pipeline.yaml says {model!r}")
    if batch < mux.batch_size:
        problems.append(f"max_batch_size {batch} is below the mux batch size {mux.batch_size}")
    if [i["name"][0] for i in inputs] != [ENSEMBLE_INPUT]:
        problems.append(f"backend.inputs must be the one tensor {ENSEMBLE_INPUT}")
    elif list(inputs[0].get("dims", [])) != [mux.height, mux.width, 3]:
        problems.append(f"{ENSEMBLE_INPUT} dims must be the mux surface [{mux.height}, {mux.width}, 3]")
    if [o["name"][0] for o in outputs] != [ENSEMBLE_OUTPUT]:
        problems.append(f"backend.outputs must be the one tensor {ENSEMBLE_OUTPUT}")
    if mode == "grpc" and sharing is not True:
        problems.append("grpc.enable_cuda_buffer_sharing must be true (frames stay on the GPU)")
    interval = config.get("input_control", [{}])[0].get("interval", [0])[0]
    if interval != settings.inference.interval:
        # The detection probe tells a frame between inferences from a failed one by this interval.
        problems.append(
            f"input_control.interval is {interval}, pipeline.yaml says {settings.inference.interval}"
        )
    if not _one(config, "output_control").get("output_tensor_meta", [False])[0]:
        problems.append("output_control.output_tensor_meta must be true (the probe reads DETECTIONS)")
    if problems:
        raise ConfigError(f"nvinferserver config {path}: {'; '.join(problems)}")


def check_repository(config: DeepStreamConfig, repository: Path) -> None:
    """The ensemble the pipeline calls exists in `repository` and speaks the contract at our batch size."""
    settings = config.settings
    try:
        spec = ModelRepository(repository).model(settings.inference.model)
    except RepositoryError as exc:
        raise ConfigError(f"deepstream_configs: {exc}") from None
    tensors = {t["name"][0]: t for kind in ("input", "output") for t in spec.config.get(kind, [])}
    expected = {ENSEMBLE_INPUT: ("TYPE_UINT8", 3), ENSEMBLE_OUTPUT: ("TYPE_FP32", 7)}
    problems = []
    for name, (data_type, last) in expected.items():
        tensor = tensors.get(name)
        if tensor is None:
            problems.append(f"has no tensor {name}")
        elif tensor["data_type"][0] != data_type or list(tensor["dims"])[-1] != last:
            problems.append(f"{name} is not {data_type} [..., {last}]")
    batch = spec.config.get("max_batch_size", [0])[0]
    if batch < settings.mux.batch_size:
        problems.append(f"max_batch_size {batch} is below the mux batch size {settings.mux.batch_size}")
    if problems:
        raise ConfigError(f"model {spec.name} in {repository}: {'; '.join(problems)}")


def check_cameras(config: DeepStreamConfig, cameras: Iterable[CameraConfig]) -> None:
    """The registry's cameras fit this pipeline (nvurisrcbin opens every scheme a CameraConfig allows)."""
    count, limit = len(list(cameras)), config.settings.sources.max_cameras
    if count > limit:
        raise ConfigError(
            f"{count} cameras are registered; pipeline.yaml reserves {limit} (sources.max_cameras)"
        )


def load_deepstream_config(folder: Path, repository: Path | None = None) -> DeepStreamConfig:
    """Read `folder/pipeline.yaml` and the files it names; with `repository`, check the model against it."""
    settings = load_model_file(folder / SETTINGS_FILE, DeepStreamSettings, "deepstream settings")
    inference = settings.inference
    parsed = {}
    for mode, name in (("grpc", inference.grpc_config), ("capi", inference.capi_config)):
        path = folder / name
        parsed[mode] = _read_nvinferserver(path)
        _check_nvinferserver(path, parsed[mode], settings, mode)
    config = DeepStreamConfig(folder, settings, parsed, _read_tracker(folder / settings.tracker.config))
    if repository is not None:
        check_repository(config, repository)
    return config
