"""The GPU mask kernels compiled for the host by g++, driven as `gpu_masks.mask_surfaces` drives them.

A loop over thread indices stands in for the CUDA grid, and the surfaces are NumPy memory: the kernels'
arithmetic runs on every machine. Only the CUDA toolchain itself needs a GPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator.core import gpu_masks
from orchestrator.core.gpu_masks import Surface, plane_table, table_totals
from orchestrator.core.masks import MaskStyle

HARNESS = r"""
#include <math.h>
#include <algorithm>
using std::min;
struct Dim { unsigned x; };
static Dim blockIdx, threadIdx, blockDim = {256};
#define __global__
#define __device__ static
static unsigned atomicAdd(unsigned* a, unsigned v) { unsigned old = *a; *a += v; return old; }
"""
DRIVER = r"""
extern "C" void run(int kernel, const long long* table, int rows, long long n, unsigned* sums) {
    for (long long g = 0; g < n; ++g) {
        blockIdx.x = (unsigned)(g / blockDim.x);
        threadIdx.x = (unsigned)(g % blockDim.x);
        if (kernel == 0) block_sums(table, rows, n, sums); else write_pixels(table, rows, n, sums);
    }
}
"""


class HostKernels:
    def __init__(self, folder: Path) -> None:
        compiler = shutil.which("g++")
        if compiler is None:
            raise FileNotFoundError("g++ is not installed: the kernels cannot be compiled for the host")
        source, library = folder / "kernels.cpp", folder / "kernels.so"
        source.write_text(HARNESS + gpu_masks._KERNELS + DRIVER)
        # -ffp-contract=off: no fused multiply-add, as nvrtc is told (--fmad=false)
        command = [compiler, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library), str(source)]
        subprocess.run(command, check=True)
        self.lib = ctypes.CDLL(str(library))
        self.calls = 0

    def __call__(
        self,
        surfaces: Sequence[Surface],
        frame_index: np.ndarray,
        bounds: np.ndarray,
        style: MaskStyle,
        strengths: np.ndarray,
        object_sides: np.ndarray,
    ) -> int:
        self.calls += 1
        table = np.ascontiguousarray(
            plane_table(surfaces, frame_index, bounds, style, strengths, object_sides)
        )
        totals = table_totals(table)
        sums = np.zeros(max(totals.cells, 1) * 3, dtype=np.uint32)
        for kernel, count in ((0, totals.cell_rows), (1, totals.pixels)):
            self.lib.run(
                ctypes.c_int(kernel),
                table.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(len(table)),
                ctypes.c_longlong(count),
                sums.ctypes.data_as(ctypes.c_void_p),
            )
        return len(table)
