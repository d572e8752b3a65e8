"""The embedded inference backend: ONNX Runtime sessions over the model repository.

Execution providers are always named explicitly: left to itself ONNX Runtime may pick a provider that is
installed but unwanted (a cloud or Azure provider), and the audit trail must say what ran.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .fetch import pull_model, sha256_of
from .repository import PROVENANCE_FILE, ModelRepository, ModelSpec, RepositoryError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class DeviceError(ValueError):
    """A device asked for that this machine or this onnxruntime build does not have."""


def choose_providers(device: str = "auto") -> list[str]:
    """`cpu`, `cuda`, or `auto` (CUDA when this onnxruntime build has it, CPU always last)."""
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda" and CUDA not in available:
        raise DeviceError("the CUDA execution provider is not available in this onnxruntime build")
    if device in ("cuda", "auto") and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how models run: `device` auto|cpu|cuda; `precision` auto (int8 on the CPU where there is
    an int8 copy, else float) or fp32; `threads` per session (default: every core)."""

    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    provider: str
    precision: str  # "fp32" or "int8"
    spec: ModelSpec
    session: ort.InferenceSession

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One inference over a batch [B,3,H,W]; outputs by the config's tensor names."""
        names = self.spec.output_names
        outputs = self.session.run(names, {self.spec.input_names[0]: batch})
        return dict(zip(names, outputs, strict=True))

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}:{self.precision}"


def verify_against_provenance(path: Path, int8: bool) -> None:
    """A pulled model file must still be the one `models pull` wrote: a swapped file never runs."""
    provenance_file = path.parent / PROVENANCE_FILE
    if not provenance_file.is_file():
        return  # a version added by hand (issue 5's uploads carry their own validation)
    provenance = json.loads(provenance_file.read_text(encoding="utf-8"))
    expected = provenance["int8"]["sha256"] if int8 else provenance["model_sha256"]
    if sha256_of(path) != expected:
        raise RepositoryError(f"{path} is not what models pull wrote; run: cityveil models pull --force")


def load_model(
    repository: ModelRepository, name: str, options: RuntimeOptions | None = None, version: int | None = None
) -> LoadedModel:
    """A version of a model (default: the serving one); its pinned weights are pulled first if missing."""
    spec = repository.model(name)
    if spec.source is not None:
        pull_model(spec)
    version = version if version is not None else spec.serving_version()
    options = options or RuntimeOptions()
    providers = choose_providers(options.device)
    # On the CPU, the int8 copy where there is one; GPUs run the float model (TensorRT picks precision).
    int8 = (
        options.precision == "auto" and providers[0] == CPU and spec.model_path(version, int8=True).is_file()
    )
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads or os.cpu_count() or 1
    session_options.log_severity_level = 3
    # Idle ONNX Runtime threads would otherwise spin and take the cores that decode and encode need.
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = spec.model_path(version, int8)
    verify_against_provenance(path, int8)
    session = ort.InferenceSession(str(path), session_options, providers=providers)
    return LoadedModel(name, version, session.get_providers()[0], "int8" if int8 else "fp32", spec, session)
