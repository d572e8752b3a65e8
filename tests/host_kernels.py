"""The GPU mask kernels compiled for the host by g++, driven as `gpu_masks.mask_surfaces` drives them.

Each CUDA block of a launch runs in turn, last first, with a single thread: the kernels stride their
loops by the block's size and synchronise between phases, so one thread does a whole block's work in the
same order of phases. The surfaces are NumPy memory: the kernels' arithmetic runs on every machine. Only
the CUDA toolchain itself needs a GPU.

What this cannot catch: races between the threads of a block (one thread, `__syncthreads` a no-op),
shared memory read before it is written or beyond the launch's size (a static buffer, zeroed once),
misaligned words and out-of-bounds writes. On a GPU, compute-sanitizer's racecheck, synccheck, initcheck
and memcheck over the CuPy tests cover those.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator.core import gpu_masks
from orchestrator.core.gpu_masks import Surface, kernel_plan
from orchestrator.core.masks import MaskStyle

HOST_SHARED = 64 * 1024  # the harness's shared buffer: more than a CUDA block gets without opting in

HARNESS = (
    f"#define HOST_SHARED {HOST_SHARED}\n"
    + r"""
#include <math.h>
#include <algorithm>
using std::min;
using std::max;
struct Dim { unsigned x; };
static Dim blockIdx, threadIdx, blockDim = {1};
struct uchar4 { unsigned char x, y, z, w; };
#define __global__
#define __device__ static
#define SHARED_BUFFER(name) static unsigned char name[HOST_SHARED] __attribute__((aligned(8)))
static void __syncthreads() {}
static int __double2int_rn(double v) { return (int)rint(v); }
static unsigned atomicAdd(unsigned* a, unsigned v) { unsigned old = *a; *a += v; return old; }
"""
)


def _driver(names: Sequence[str]) -> str:
    cases = "".join(
        f"        case {i}: {name}(table, bands, means); break;\n" for i, name in enumerate(names)
    )
    return (
        'extern "C" void run(int kernel, const long long* table, const int* bands, int blocks,\n'
        "                    float* means) {\n"
        # Last block first: a GPU runs a launch's blocks in any order, so a plan that needs an order
        # between the blocks of one launch (overlapping boxes in one layer) must fail here too.
        "    for (int block = blocks - 1; block >= 0; --block) {\n"
        "        blockIdx.x = (unsigned)block;\n"
        "        switch (kernel) {\n" + cases + "        }\n    }\n}\n"
    )


class HostKernels:
    def __init__(self, folder: Path) -> None:
        compiler = shutil.which("g++")
        if compiler is None:
            raise FileNotFoundError("g++ is not installed: the kernels cannot be compiled for the host")
        self.names = [kernel.name for kernels in gpu_masks.KERNELS.values() for kernel in kernels]
        source, library = folder / "kernels.cpp", folder / "kernels.so"
        source.write_text(HARNESS + gpu_masks._KERNELS + _driver(self.names))
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
        plan = kernel_plan(surfaces, frame_index, bounds, style, strengths, object_sides, HOST_SHARED)
        table, bands = np.ascontiguousarray(plan.table), np.ascontiguousarray(plan.bands)
        means = np.zeros(max(plan.means, 1), dtype=np.float32)
        for step in plan.launches:
            self.lib.run(
                ctypes.c_int(self.names.index(step.kernel)),
                table.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_void_p(bands.ctypes.data + step.first_band * bands.strides[0]),
                ctypes.c_int(step.bands),
                means.ctypes.data_as(ctypes.c_void_p),
            )
        return len(table)
