"""A real Triton server (the CPU build from nvidia-pytriton) over the project's repository, per session.

It skips only where the Triton environment is not installed (see model_repository.triton_install).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scenes
from model_repository import triton_install

from orchestrator.inference.triton_server import TritonServer


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    install = triton_install()
    log = Path(tmp_path_factory.mktemp("triton")) / "tritonserver.log"
    with TritonServer(install=install, log_file=log) as server:
        yield server


@pytest.fixture(scope="session")
def sample_frames() -> list[np.ndarray]:
    return scenes.sample_frames()
