"""Model versions (role ml_engineer): upload, validate, activate without stopping streams, roll back.

The model repository stays the one source of truth, as Triton reads it: a version is a numbered folder,
and the serving version is the one the config's `version_policy` names (config.pbtxt and configs/*.pbtxt
alike, so a restarted server serves the same). A version may bring its own values for a few config
parameters (`model_config`); the configs carry the serving version's. Each model folder keeps
`versions.json`: who added which version, its checksum, config changes and validation, the model's own
parameter values (`base_parameters`), and the order of activations (for rollback). Every step is audited.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..atomic_files import write_atomic
from ..inference.canary import validate_version
from ..inference.detectors import MODELS
from ..inference.repository import (
    MODEL_FILE,
    PROVENANCE_FILE,
    ModelRepository,
    ModelSpec,
    RepositoryError,
)
from ..inference.version_config import tunable_values, with_policy, with_values
from ..storage.database import Database
from .audit import AuditLog
from .cameras import StreamControl
from .clock import utc_now
from .errors import Conflict, Invalid, NotFound
from .model_config import parameter_changes, version_values

VERSIONS_FILE = "versions.json"
BACKEND_FILE = "model.py"  # the python backend's entry point on CPU Triton, copied into new versions
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class ModelControl(Protocol):
    """The inference server's side of a swap (Triton explicit model control)."""

    def load(self, name: str) -> None: ...  # (re)load with the config on disk; raises when it fails

    def states(self) -> dict[tuple[str, int], str]: ...  # (model, version) -> READY, UNAVAILABLE...


@runtime_checkable
class Reloadable(Protocol):
    def reload_models(self) -> None: ...


class WorkerReload:
    """The embedded engine's side of a swap: every worker loads the pinned version and rebuilds its
    streams' frame steps between two batches (each detects on its next frame, so no frame goes unmasked).
    A data plane without `reload_models` reads the pinned version when it starts."""

    def __init__(self, workers: StreamControl) -> None:
        self.workers = workers

    def load(self, name: str) -> None:
        if isinstance(self.workers, Reloadable):
            self.workers.reload_models()

    def states(self) -> dict[tuple[str, int], str]:
        return {}  # the workers load in their own processes; their status reports carry the labels


class TritonThenWorkers:
    """Through Triton: the server swaps the model, then every worker re-reads the configs, so that its
    detectors' traits (the reliable object sizes the policy scales frames by) follow the new version."""

    def __init__(self, triton: ModelControl, workers: StreamControl) -> None:
        self.triton = triton
        self.workers = WorkerReload(workers)

    def load(self, name: str) -> None:
        self.triton.load(name)
        self.workers.load(name)

    def states(self) -> dict[tuple[str, int], str]:
        return self.triton.states()


class ModelManager:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        repository: ModelRepository,
        control: ModelControl,
        tolerance: float,
    ) -> None:
        self.db = db
        self.audit = audit
        self.repository = repository
        self.control = control
        self.tolerance = tolerance
        self._lock = threading.Lock()  # one change at a time: versions.json and the configs move together

    def _spec(self, name: str) -> ModelSpec:
        if name not in {model for model, _ in MODELS.values()}:
            raise NotFound(f"no detector model {name!r} (have: {', '.join(m for m, _ in MODELS.values())})")
        return self.repository.model(name)

    def _record(self, spec: ModelSpec) -> dict[str, Any]:
        path = spec.folder / VERSIONS_FILE
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        return {
            "versions": record.get("versions", {}),
            "activations": record.get("activations", []),
            # before any version changed them, the configs held the model's own values
            "base_parameters": record.get("base_parameters", tunable_values(spec)),
        }

    def _save(self, spec: ModelSpec, record: dict[str, Any]) -> None:
        write_atomic(spec.folder / VERSIONS_FILE, (json.dumps(record, indent=2) + "\n").encode())

    def _audit(self, actor: str, action: str, details: dict[str, Any]) -> None:
        with self.db.write() as session:
            self.audit.append(session, actor, action, details)

    def list(self) -> list[dict[str, Any]]:
        states = self.control.states()
        models = []
        for name, _ in MODELS.values():
            spec = self.repository.model(name)
            record = self._record(spec)
            serving = spec.serving_version()
            versions = []
            for version in spec.available_versions():
                added = record["versions"].get(str(version), {})
                versions.append(
                    {
                        "version": version,
                        "serving": version == serving,
                        "server_state": states.get((name, version)),  # Triton's: READY, UNAVAILABLE...
                        "sha256": added.get("sha256"),
                        "added_by": added.get("added_by"),
                        "parameters": added.get("parameters", {}),
                        "validation": added.get("validation"),
                    }
                )
            models.append({"name": name, "serving_version": serving, "versions": versions})
        return models

    def add(self, name: str, data: bytes, actor: str, config: Any = None) -> dict[str, Any]:
        """Write the upload as the next version, validate it (with its `config` changes) against the
        serving one; refused: removed."""
        spec = self._spec(name)
        if not data or len(data) > MAX_UPLOAD_BYTES:
            raise Invalid(f"the upload must be an ONNX file of 1 byte to {MAX_UPLOAD_BYTES} bytes")
        changes = parameter_changes(config)
        with self._lock:
            record = self._record(spec)
            values = version_values(record["base_parameters"], changes)
            numbered = [int(p.name) for p in spec.folder.iterdir() if p.name.isdigit()]
            version = max(numbered, default=0) + 1
            serving = spec.serving_version()
            # A `latest` policy would serve the upload as soon as it is on disk (on a restart, say):
            # from the first upload on, the configs name the serving version.
            _write_configs(spec, serving, tunable_values(spec))
            folder = spec.folder / str(version)
            folder.mkdir()
            sha256 = hashlib.sha256(data).hexdigest()
            details = {
                "model": name,
                "version": version,
                "sha256": sha256,
                "serving_version": serving,
                "parameters": changes,
            }
            try:
                write_atomic(folder / MODEL_FILE, data)
                backend = spec.folder / str(serving) / BACKEND_FILE
                if backend.is_file():
                    shutil.copyfile(backend, folder / BACKEND_FILE)
                validation = validate_version(self.repository, name, version, serving, self.tolerance, values)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            if not validation.ok:
                shutil.rmtree(folder, ignore_errors=True)
                self._audit(actor, "model.version_rejected", {**details, "validation": validation.as_dict()})
                raise Invalid(validation.reason)
            added = {
                "sha256": sha256,
                "added_by": actor,
                "added_at": utc_now(),
                "parameters": changes,
                "validation": validation.as_dict(),
            }
            record["versions"][str(version)] = added
            self._save(spec, record)
            self._audit(actor, "model.version_added", {**details, "validation": validation.as_dict()})
        return {"name": name, "version": version, **added}

    def activate(self, name: str, version: int, actor: str) -> dict[str, Any]:
        with self._lock:
            return self._activate(self._spec(name), version, actor, "model.activated")

    def rollback(self, name: str, actor: str) -> dict[str, Any]:
        """Back to the version that served before the current one."""
        with self._lock:
            spec = self._spec(name)
            activations = self._record(spec)["activations"]
            if len(activations) < 2:
                raise Conflict(f"{name} has no earlier activated version to roll back to")
            return self._activate(spec, activations[-2], actor, "model.rolled_back", rollback=True)

    def _activate(
        self, spec: ModelSpec, version: int, actor: str, action: str, rollback: bool = False
    ) -> dict[str, Any]:
        name = spec.name
        previous = spec.serving_version()
        if version not in spec.available_versions():
            raise NotFound(f"{name} has no version {version}")
        if version == previous:
            raise Conflict(f"version {version} of {name} is already serving")
        record = self._record(spec)
        self._check_unchanged(spec, version, record)
        changes = record["versions"].get(str(version), {}).get("parameters", {})
        values = version_values(record["base_parameters"], changes)
        details = {"model": name, "version": version, "previous_version": previous, "parameters": values}
        configs = _write_configs(spec, version, values)
        try:
            self.control.load(name)
        except Exception as exc:  # Triton keeps serving the loaded version when a reload fails
            for path, text in configs.items():
                write_atomic(path, text.encode())
            self._audit(actor, "model.activation_failed", {**details, "error": str(exc)[:500]})
            raise Conflict(
                f"the inference server could not load version {version} of {name}; "
                f"version {previous} keeps serving"
            ) from None
        activations = record["activations"] or [previous]
        record["activations"] = activations[:-1] if rollback else [*activations, version]
        self._save(spec, record)
        self._audit(actor, action, details)
        return next(m for m in self.list() if m["name"] == name)

    @staticmethod
    def _check_unchanged(spec: ModelSpec, version: int, record: dict[str, Any]) -> None:
        """Only validated bytes serve: an upload must still match its checksum; others must be pulled."""
        added = record["versions"].get(str(version))
        path = spec.model_path(version)
        if added is None:
            if not (path.parent / PROVENANCE_FILE).is_file():
                raise Invalid(
                    f"version {version} of {spec.name} was neither uploaded and validated nor pulled"
                )
            return
        if hashlib.sha256(path.read_bytes()).hexdigest() != added["sha256"]:
            raise Invalid(f"version {version} of {spec.name} changed after its validation; upload it again")


def _write_configs(spec: ModelSpec, version: int, values: dict[str, str]) -> dict[Path, str]:
    """Pin `version` with its parameter `values` in every config of the model (all edited before any is
    written); returns the texts as they were, to restore them."""
    paths = [spec.folder / "config.pbtxt", *sorted((spec.folder / "configs").glob("*.pbtxt"))]
    before = {path: path.read_text(encoding="utf-8") for path in paths}
    try:
        after = {path: with_values(with_policy(text, version), values) for path, text in before.items()}
    except RepositoryError as exc:
        raise Conflict(f"{spec.name}'s configs cannot take version {version}'s values: {exc}") from None
    for path, text in after.items():
        write_atomic(path, text.encode())
    return before
