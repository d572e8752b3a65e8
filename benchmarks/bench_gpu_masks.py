"""The GPU check of issue 6: throughput of the batched GPU mask kernels against the device's own copy
bandwidth, and their parity with the NumPy masks, on 32 RGBA surfaces of 1920x1080 with a padded row pitch
(as DeepStream allocates them) and 20 boxes of 24 to 200 px on each, not overlapping.

Masking is memory-bound (a box is read once and written once), so the figure is the bytes it moves per
second as a share of what a device-to-device copy moves in the same run (target 70%). The bytes counted
are those a mask must move at least (solid: written once); the kernels move more (an RGBA pixel's word is
read before it is written, to keep alpha), so the share is a lower bound. Where onnxruntime has its CUDA
provider, the detectors' networks are timed too (float models, batches of 8 1080p frames at scale 0.5).
The Triton preprocess step's GPU resize (a batch of 16 1080p RGB frames to each detector's input at scale
0.5) is timed beside the CPU engine's swscale path on the same frames. Two timings of the masks: the
whole call (the kernel plan built on the host and uploaded, then its launches) and the kernels alone.

    .venv/bin/python benchmarks/bench_gpu_masks.py [--iterations 50] [--json gpu_masks.json]

Needs CuPy and a CUDA GPU (`pip install 'cityveil[gpu]'`); without them it exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from orchestrator.core.gpu_masks import (
    GPU_STYLES,
    PARITY_TOLERANCE,
    Surface,
    device_work,
    launch,
    mask_surfaces,
)
from orchestrator.core.masks import MaskStyle, mask_boxes
from orchestrator.core.xp import available_backends
from orchestrator.inference.detectors import MODELS
from orchestrator.inference.onnx_backend import CUDA, RuntimeOptions, load_model
from orchestrator.inference.preprocess import device_input
from orchestrator.inference.repository import ModelRepository
from orchestrator.samples import background

BATCH, WIDTH, HEIGHT, PITCH = 32, 1920, 1080, 8192  # DeepStream pads 1920x4 bytes to its pitch alignment
BOXES = 20
DETECTOR_BATCH, DETECTOR_SCALE = 8, 0.5
RESIZE_BATCH = 16  # the ensemble's max_batch_size
CELL_W, CELL_H = 240, 216  # an 8x5 grid of cells, one box at most in each: no overlaps
TARGET = 0.70


def batch_boxes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame index, bounds, strengths and object sides of the objects of a whole batch."""
    index, bounds = [], []
    cells = [(cx, cy) for cx in range(WIDTH // CELL_W) for cy in range(HEIGHT // CELL_H)]
    for k in range(BATCH):
        for cell in rng.permutation(len(cells))[:BOXES]:
            cx, cy = cells[cell]
            size = int(rng.integers(24, 201))
            x = cx * CELL_W + int(rng.integers(0, CELL_W - size + 1))
            y = cy * CELL_H + int(rng.integers(0, CELL_H - size + 1))
            index.append(k)
            bounds.append((x, y, x + size, y + size))
    bounds_arr = np.asarray(bounds, dtype=np.int64)
    sides = (bounds_arr[:, 2] - bounds_arr[:, 0]).astype(np.float32)
    return np.asarray(index), bounds_arr, rng.uniform(0, 1, len(bounds)).astype(np.float32), sides


def timed(cupy: Any, run: Any, iterations: int) -> float:
    """Seconds per call, measured with CUDA events after a warm-up."""
    run()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(iterations):
        run()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / 1000 / iterations


def detector_throughput(iterations: int) -> dict[str, Any]:
    """Frames per second of each detector's network on ONNX Runtime's CUDA provider (float models), on
    batches of DETECTOR_BATCH 1080p frames at DETECTOR_SCALE, where this onnxruntime build has it."""
    if CUDA not in ort.get_available_providers():
        return {"measured": False, "why": "this onnxruntime build has no CUDA execution provider"}
    repository = ModelRepository()
    frames = [background(WIDTH, HEIGHT)] * DETECTOR_BATCH  # the content does not change the work
    figures: dict[str, Any] = {"measured": True, "batch": DETECTOR_BATCH, "scale": DETECTOR_SCALE}
    for name, factory in MODELS.values():
        model = load_model(repository, name, RuntimeOptions(device="cuda", precision="fp32"))
        blob, _ = factory.prepare(frames, DETECTOR_SCALE)
        model.run(blob)  # the first run builds the CUDA kernels' plans
        runs = []
        for _ in range(max(3, iterations // 10)):
            start = time.perf_counter()
            model.run(blob)
            runs.append(time.perf_counter() - start)
        figures[name] = {
            "input": list(blob.shape),
            "ms_per_batch": round(statistics.median(runs) * 1000, 2),
            "frames_per_s": round(DETECTOR_BATCH / statistics.median(runs), 1),
        }
    return figures


def resize_throughput(cupy: Any, iterations: int) -> dict[str, Any]:
    """Frames per second of the preprocess step's resize: on the GPU (frames already there, as DeepStream
    hands them over) and, for comparison, the CPU engine's swscale path on host copies of the frames."""
    host = [background(WIDTH, HEIGHT)] * RESIZE_BATCH
    frames = cupy.asarray(np.stack(host))
    figures: dict[str, Any] = {"batch": f"{RESIZE_BATCH} x {WIDTH}x{HEIGHT} RGB", "scale": DETECTOR_SCALE}
    for name, factory in MODELS.values():
        seconds = timed(
            cupy, lambda f=factory: device_input(frames, DETECTOR_SCALE, f.normalise), max(5, iterations // 5)
        )
        cpu_runs = []
        for _ in range(3):
            start = time.perf_counter()
            factory.prepare(host, DETECTOR_SCALE)
            cpu_runs.append(time.perf_counter() - start)
        figures[name] = {
            "gpu_ms_per_batch": round(seconds * 1000, 3),
            "gpu_frames_per_s": round(RESIZE_BATCH / seconds),
            "cpu_swscale_ms_per_batch": round(statistics.median(cpu_runs) * 1000, 1),
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gpu = [b for b in available_backends() if b is not np]
    if not gpu:
        print(
            "bench_gpu_masks: CuPy with a CUDA GPU is not available here; nothing was measured.",
            file=sys.stderr,
        )
        return 2
    cupy = gpu[0]
    rng = np.random.default_rng(0)
    host = rng.integers(0, 256, size=(BATCH, HEIGHT, PITCH), dtype=np.uint8)
    device = cupy.asarray(host)
    views = [device[k, :, : WIDTH * 4].reshape(HEIGHT, WIDTH, 4) for k in range(BATCH)]
    surfaces = [Surface.rgba(v) for v in views]
    index, bounds, strengths, sides = batch_boxes(rng)
    area = int(((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])).sum())

    scratch = cupy.empty_like(device)
    copy_s = timed(cupy, lambda: scratch.__setitem__(Ellipsis, device), args.iterations)
    copy_bandwidth = 2 * device.nbytes / copy_s  # read + write
    results: dict[str, Any] = {
        "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        "batch": f"{BATCH} x {WIDTH}x{HEIGHT} RGBA, pitch {PITCH}",
        "boxes": len(bounds),
        "copy_bandwidth_gb_s": round(copy_bandwidth / 1e9, 1),
        "styles": {},
    }
    for style in GPU_STYLES:
        device[...] = cupy.asarray(host)
        seconds = timed(
            cupy, lambda s=style: mask_surfaces(surfaces, index, bounds, s, strengths, sides), args.iterations
        )
        work = device_work(surfaces, index, bounds, style, strengths, sides)
        assert work is not None
        kernel_seconds = timed(cupy, lambda w=work: launch(w), args.iterations)
        moved = area * 4 * (1 if style is MaskStyle.SOLID else 2)  # solid only writes
        device[...] = cupy.asarray(host)
        mask_surfaces(surfaces, index, bounds, style, strengths, sides)
        worst = 0
        for k in range(BATCH):
            expected = host[k, :, : WIDTH * 4].reshape(HEIGHT, WIDTH, 4).copy()
            mine = index == k
            mask_boxes(expected[:, :, :3], bounds[mine], style, strengths[mine], sides[mine])
            got = cupy.asnumpy(views[k])
            worst = max(worst, int(np.abs(got.astype(int) - expected.astype(int)).max()))
        share = moved / seconds / copy_bandwidth
        kernel_share = moved / kernel_seconds / copy_bandwidth
        results["styles"][style.value] = {
            "ms_per_batch": round(seconds * 1000, 3),
            "masks_per_s": round(len(bounds) / seconds),
            "bandwidth_gb_s": round(moved / seconds / 1e9, 1),
            "share_of_copy": round(share, 3),
            "kernels_ms_per_batch": round(kernel_seconds * 1000, 3),
            "kernels_bandwidth_gb_s": round(moved / kernel_seconds / 1e9, 1),
            "kernels_share_of_copy": round(kernel_share, 3),
            "meets_target": share >= TARGET,
            "kernels_meet_target": kernel_share >= TARGET,
            "max_diff_vs_numpy": worst,
            "parity": worst <= PARITY_TOLERANCE,
        }
    results["gpu_resize"] = resize_throughput(cupy, args.iterations)
    results["detectors"] = detector_throughput(args.iterations)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
