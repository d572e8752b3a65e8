"""Array backends for tests: NumPy always, CuPy where a GPU answers, otherwise a visible skip."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.core.xp import available_backends

NO_GPU = "CuPy with a CUDA GPU is not available"
GPU_BACKENDS = [b for b in available_backends() if b is not np]
needs_gpu = pytest.mark.skipif(not GPU_BACKENDS, reason=NO_GPU)


def cupy_param(value: object = None) -> object:
    """A `cupy` test parameter: `value` (default: the CuPy module), skipped with its reason without a GPU."""
    if GPU_BACKENDS:
        return pytest.param(GPU_BACKENDS[0] if value is None else value, id="cupy")
    return pytest.param(value, id="cupy", marks=pytest.mark.skip(reason=NO_GPU))


# Parametrises a test's `xp` argument over every backend.
BACKENDS = pytest.mark.parametrize("xp", [pytest.param(np, id="numpy"), cupy_param()])
