"""Per-frame latency and frames/s of the frame step with its detectors on the embedded backend (ONNX Runtime
in process) and through Triton gRPC (the server of nvidia-pytriton, its python-backend models on the CPU),
with and without system shared memory (and with CUDA shared memory where cuda-python finds a GPU), at 1
and 4 concurrent streams.

Two things are timed: `detector_call`, one face detection at scale 1 on one 1280x720 frame (the backend
alone), and `frame_step`, a live camera's whole step (profile public_space: faces and plates at the scales
the policy plans, tracks, masks). Each stream is a thread fed frames one at a time, as a live camera is;
all streams share one engine, as the cameras of a worker do.
The frames are the eval street clip's (../shared), or the sample clip when it is missing. Each
configuration runs `--repeats` times after a warm-up; the table shows medians.

    .venv/bin/python benchmarks/bench_triton.py --frames 40 --streams 1 4 --repeats 3 --json triton.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_video import source_frames

from orchestrator.core.detections import ObjectClass
from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.inference.onnx_backend import RuntimeOptions
from orchestrator.inference.triton_options import SharedMemory, TritonOptions
from orchestrator.inference.triton_server import TritonServer
from orchestrator.samples import write_sample_video

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "eval" / "videos" / "person-bicycle-car-detection.mp4"
WIDTH, HEIGHT = 1280, 720


def load_frames(source: Path, count: int) -> tuple[list[np.ndarray], str]:
    if not source.is_file():
        source = Path(tempfile.mkdtemp()) / "sample.mp4"
        write_sample_video(source, WIDTH, HEIGHT, frames=count, fps=15, audio=False)
    frames = [
        f.reformat(width=WIDTH, height=HEIGHT, format="rgb24").to_ndarray()
        for f in source_frames(source, count)
    ]
    return frames, source.name


Work = Callable[[np.ndarray], None]


def detector_call(engine: EmbeddedEngine, k: int) -> Work:
    """One face detection at scale 1 on one frame: the backend alone."""
    detector = engine.detectors[ObjectClass.FACE]

    def call(frame: np.ndarray) -> None:
        detector.detect([frame], 1.0, 0.5)

    return call


def frame_step(engine: EmbeddedEngine, k: int) -> Work:
    """The whole frame step of a live camera (policy, detections at the planned scales, tracks, masks)."""
    anonymizer = engine.stream(CameraContext(BUILTIN_PROFILES["public_space"], WIDTH, HEIGHT), name=f"cam{k}")

    def step(frame: np.ndarray) -> None:
        if anonymizer.process([frame.copy()])[0].failed:
            raise RuntimeError("a frame failed closed: the figures would not be inference")

    return step


def run(
    engine: EmbeddedEngine,
    what: Callable[[EmbeddedEngine, int], Work],
    frames: list[np.ndarray],
    streams: int,
) -> dict[str, float]:
    """`streams` threads, each taking every frame once; per-frame latencies and overall frames/s."""
    latencies: list[list[float]] = [[] for _ in range(streams)]
    errors: list[BaseException] = []

    def stream(k: int) -> None:
        work = what(engine, k)
        try:
            for frame in frames:
                start = time.perf_counter()
                work(frame)
                latencies[k].append(time.perf_counter() - start)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    every = [x for per_stream in latencies for x in per_stream]
    return {
        "fps": len(every) / wall,
        "latency_median_ms": 1000 * statistics.median(every),
        "latency_p95_ms": 1000 * float(np.percentile(every, 95)),
    }


def measure(
    engine: EmbeddedEngine,
    what: Callable[[EmbeddedEngine, int], Work],
    frames: list[np.ndarray],
    streams: int,
    repeats: int,
) -> dict[str, float]:
    run(engine, what, frames[:4], streams)  # warm-up: sessions, server, shared-memory regions
    runs = [run(engine, what, frames, streams) for _ in range(repeats)]
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


def cuda_shared_memory_available() -> bool:
    """cuda-python (the gpu extra) and a CUDA GPU on this host."""
    try:
        import tritonclient.utils.cuda_shared_memory  # noqa: F401
        from cuda.bindings import runtime
    except (ImportError, RuntimeError):
        return False
    error, count = runtime.cudaGetDeviceCount()
    return error == runtime.cudaError_t.cudaSuccess and count > 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=40, help="frames per stream per run")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    frames, source = load_frames(args.source, args.frames)
    results: list[dict[str, Any]] = []
    with TritonServer(log_file=Path(tempfile.mkdtemp()) / "tritonserver.log") as server:
        backends: dict[str, dict[str, Any]] = {
            "embedded": {"options": RuntimeOptions(device="cpu")},
            "triton, shared memory": {"triton": TritonOptions(server.url, shared_memory=SharedMemory.SYSTEM)},
            "triton, gRPC payload": {"triton": TritonOptions(server.url, shared_memory=SharedMemory.NONE)},
        }
        if cuda_shared_memory_available():  # a GPU host: the server is the same CUDA build
            backends["triton, CUDA shared memory"] = {
                "triton": TritonOptions(server.url, shared_memory=SharedMemory.CUDA)
            }
        for name, kwargs in backends.items():
            engine = EmbeddedEngine(**kwargs)
            try:
                for what in (detector_call, frame_step):
                    for streams in args.streams:
                        figures = measure(engine, what, frames, streams, args.repeats)
                        results.append(
                            {"what": what.__name__, "backend": name, "streams": streams, **figures}
                        )
                        print(json.dumps(results[-1]), flush=True)
            finally:
                engine.close()
    print(
        f"\n{WIDTH}x{HEIGHT} frames of {source}, {args.frames} per stream, medians of {args.repeats} runs\n"
    )
    print("| measured | backend | streams | frames/s | latency median (ms) | latency p95 (ms) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = [r["what"], r["backend"], r["streams"], r["fps"], r["latency_median_ms"], r["latency_p95_ms"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
