"""How many live 1280x720 cameras at 15 frames/s one worker sustains on this machine, and at what cost.

Each camera is a looping file source (the eval street clip rescaled to 720p, or the project's sample
clip when ../shared is missing) read in real time, as a camera would deliver it. For 1, 2, 4 and 8
cameras the worker runs for --seconds after a warm-up, and the script reports frames in and out per
second, frames dropped under overload, p95 latency from decode to publish, CPU use and memory.

    .venv/bin/python benchmarks/bench_live.py --seconds 20 --json live.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from bench_video import source_frames, write_frames  # the same clip making as the batch benchmark

from orchestrator.core.policy import CameraContext
from orchestrator.core.profiles import BUILTIN_PROFILES, DEFAULT_PROFILE
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.dataplane.live.sources import LiveSource, SourceSettings
from orchestrator.dataplane.live.worker import LiveCamera, LiveWorker
from orchestrator.samples import write_sample_video

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "eval" / "videos" / "person-bicycle-car-detection.mp4"
WIDTH, HEIGHT, FPS = 1280, 720, 15


class CountingOutput:
    def publish(self, camera_id: str, frame: np.ndarray, pts_s: float) -> None:
        pass

    def publish_metadata(self, camera_id: str, data: dict) -> None:
        pass


def make_clip(source: Path, work: Path, seconds: int = 10) -> Path:
    clip = work / "cam720.mp4"
    if source.is_file():
        write_frames(clip, (WIDTH, HEIGHT), Fraction(FPS), source_frames(source, seconds * FPS))
    else:
        write_sample_video(clip, WIDTH, HEIGHT, frames=seconds * FPS, fps=FPS, audio=False)
    return clip


def run(clip: Path, cameras: int, seconds: float, warmup: float, engine: EmbeddedEngine) -> dict:
    profile = BUILTIN_PROFILES[DEFAULT_PROFILE]

    def make_stream(width: int, height: int, fps: float):
        return engine.stream(CameraContext(profile, width, height, fps))

    live = [
        LiveCamera(f"cam{k}", LiveSource(f"cam{k}", SourceSettings(f"file://{clip}", loop=True)), make_stream)
        for k in range(cameras)
    ]
    worker = LiveWorker(live, CountingOutput())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    time.sleep(warmup)
    start_in = sum(c.source.stats.frames_in for c in live)
    start_out = sum(c.stats.frames_out for c in live)
    start_drop = sum(c.source.stats.frames_dropped for c in live)
    for camera in live:
        camera.stats.latencies_s.clear()
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = time.process_time(), time.monotonic()
    frames_in = sum(c.source.stats.frames_in for c in live) - start_in
    frames_out = sum(c.stats.frames_out for c in live) - start_out
    dropped = sum(c.source.stats.frames_dropped for c in live) - start_drop
    latencies = [x for c in live for x in c.stats.latencies_s]
    stop.set()
    thread.join(30)
    elapsed = t1 - t0
    return {
        "cameras": cameras,
        "frames_in_per_s": round(frames_in / elapsed, 1),
        "frames_out_per_s": round(frames_out / elapsed, 1),
        "dropped_per_s": round(dropped / elapsed, 1),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)) * 1000) if latencies else None,
        "cpu_percent": round(100 * (cpu1 - cpu0) / elapsed),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "detect_interval": worker.shedder.interval,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engine = EmbeddedEngine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as work:
        clip = make_clip(args.source, Path(work))
        print(
            f"{'cameras':>7} {'in/s':>6} {'out/s':>6} {'drop/s':>6} {'p95 ms':>7} {'cpu %':>6} {'rss MiB':>8}"
        )
        for cameras in args.cameras:
            row = run(clip, cameras, args.seconds, args.warmup, engine)
            rows.append(row)
            print(
                f"{row['cameras']:>7} {row['frames_in_per_s']:>6} {row['frames_out_per_s']:>6} "
                f"{row['dropped_per_s']:>6} {row['latency_p95_ms']!s:>7} {row['cpu_percent']:>6} "
                f"{row['max_rss_mib']:>8} {row['detect_interval']:>8}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
