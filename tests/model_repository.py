"""A model repository of one's own for tests that change it (uploads, activations), and the Triton
environment they need. Weights are linked, not copied: the copy costs nothing and the weights stay read-only
in effect (a test never writes a version folder it did not create)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from orchestrator.inference.repository import default_repository
from orchestrator.inference.triton_server import TritonInstall, TritonUnavailable

WEIGHTS = ("*.onnx", "provenance.json")


def repository_copy(target: Path) -> Path:
    source = default_repository()
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*WEIGHTS, "versions.json"))
    for pattern in WEIGHTS:
        for path in source.glob(f"*/[0-9]*/{pattern}"):
            (target / path.relative_to(source)).symlink_to(path)
    return target


def triton_install() -> TritonInstall:
    """The CPU Triton server; skips without it, unless ./dev.sh test (which builds it) says it must run."""
    try:
        return TritonInstall.find()
    except TritonUnavailable as exc:
        if os.environ.get("CITYVEIL_REQUIRE_TRITON"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
