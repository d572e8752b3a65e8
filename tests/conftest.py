"""Fixtures shared by test folders."""

from __future__ import annotations

import pytest
from host_kernels import HostKernels


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory: pytest.TempPathFactory) -> HostKernels:
    """The GPU mask kernels compiled for the host, once per run (skips where g++ is missing)."""
    try:
        return HostKernels(tmp_path_factory.mktemp("kernels"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
