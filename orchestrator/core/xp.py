"""One place that decides whether an array lives on the CPU (NumPy) or the GPU (CuPy).

Core functions take arrays and call `array_module(arr)` instead of importing NumPy directly, so the same
code masks a frame on a laptop and on a GPU node.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

try:  # CuPy is an optional extra (`cityveil[gpu]`); without it everything runs on NumPy.
    import cupy as _cupy
except ImportError:  # pragma: no cover - depends on the machine
    _cupy = None


def array_module(*arrays: Any) -> ModuleType:
    """NumPy or CuPy, whichever owns the given arrays."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def available_backends() -> list[ModuleType]:
    """Array modules usable on this machine (CuPy only where a GPU answers)."""
    backends: list[ModuleType] = [np]
    if _cupy is not None:
        try:
            if _cupy.cuda.runtime.getDeviceCount() > 0:
                backends.append(_cupy)
        except _cupy.cuda.runtime.CUDARuntimeError:
            pass
    return backends


def to_numpy(arr: Any) -> np.ndarray:
    """Host copy of an array from either backend."""
    if _cupy is not None and isinstance(arr, _cupy.ndarray):
        return _cupy.asnumpy(arr)
    return np.asarray(arr)
