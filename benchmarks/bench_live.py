"""How many live 1280x720 cameras at 15 frames/s `cityveil serve`'s data plane sustains on this machine.

The real path: the supervisor's worker processes (each with its own engine), the shared frame step,
telemetry, and the outputs as they run in `serve` (a JPEG snapshot refreshed every second per camera, and
for `--viewers` cameras a JPEG of every frame, as an MJPEG or RTSP client causes). Each camera is a
looping file source (the eval street clip rescaled to 720p, or the project's sample clip when ../shared is
missing) read in real time. For each camera count, after a warm-up, the script reports frames in, out
and dropped per second, the worst camera's p95 latency from decode to publish, CPU use of the worker
processes and their memory.

    .venv/bin/python benchmarks/bench_live.py --cameras 1 2 4 8 --workers 2 --seconds 20 --json live.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench_video import source_frames, write_frames  # the same clip making as the batch benchmark

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.profiles import BUILTIN_PROFILES, DEFAULT_PROFILE
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.dataplane.live.processes import Supervisor
from orchestrator.dataplane.live.worker import MuxSettings
from orchestrator.samples import write_sample_video

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "eval" / "videos" / "person-bicycle-car-detection.mp4"
WIDTH, HEIGHT, FPS = 1280, 720, 15
TICKS = os.sysconf("SC_CLK_TCK")


def make_clip(source: Path, work: Path, seconds: int = 10) -> Path:
    clip = work / "cam720.mp4"
    if source.is_file():
        write_frames(clip, (WIDTH, HEIGHT), Fraction(FPS), source_frames(source, seconds * FPS))
    else:
        write_sample_video(clip, WIDTH, HEIGHT, frames=seconds * FPS, fps=FPS, audio=False)
    return clip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class StatusBoard:
    """The workers' status telemetry (every 2 s per camera), with the time each arrived."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, camera_id: str, data: dict[str, Any]) -> None:
        if kind == "status":
            with self._lock:
                self.latest[camera_id] = (time.monotonic(), data)

    def snapshot(self) -> dict[str, tuple[float, dict[str, Any]]]:
        with self._lock:
            return dict(self.latest)


def follow(outputs: CameraOutputs, camera_id: str, stop: threading.Event) -> None:
    """A viewer: takes every frame, as the MJPEG route or the RTSP feed does."""
    for _ in outputs.follow(camera_id):
        if stop.is_set():
            return


def run(
    clip: Path, cameras: int, workers: int, viewers: int, seconds: float, warmup: float, mux: MuxSettings
) -> dict:
    outputs, board = CameraOutputs(), StatusBoard()
    supervisor = Supervisor(outputs, workers=min(workers, cameras), mux=mux, report=board.report).start()
    stop = threading.Event()
    try:
        ids = [f"cam{k}" for k in range(cameras)]
        for camera_id in ids:
            camera = CameraConfig(id=camera_id, source=f"file://{clip}", loop=True)
            supervisor.start_camera(camera, BUILTIN_PROFILES[DEFAULT_PROFILE])
        for camera_id in ids[:viewers]:
            threading.Thread(target=follow, args=(outputs, camera_id, stop), daemon=True).start()
        while len(board.snapshot()) < cameras or any(
            d["frames_out"] == 0 for _, d in board.snapshot().values()
        ):
            time.sleep(0.5)
        time.sleep(warmup)
        pids = supervisor.pids()
        first, cpu0, t0 = board.snapshot(), sum(cpu_seconds(p) for p in pids), time.monotonic()
        time.sleep(seconds)
        last, cpu1, t1 = board.snapshot(), sum(cpu_seconds(p) for p in pids), time.monotonic()
        rss = sum(rss_mib(p) for p in pids)
    finally:
        stop.set()
        supervisor.stop()

    def rate(name: str) -> float:
        return sum((last[c][1][name] - first[c][1][name]) / (last[c][0] - first[c][0]) for c in ids)

    latencies = [d["latency_p95_s"] for _, d in last.values() if d["latency_p95_s"] is not None]
    return {
        "cameras": cameras,
        "workers": min(workers, cameras),
        "viewers": viewers,
        "batch_size": mux.batch_size,
        "frames_in_per_s": round(rate("frames_in"), 1),
        "frames_out_per_s": round(rate("frames_out"), 1),
        "dropped_per_s": round(rate("frames_dropped"), 1),
        "latency_p95_ms_worst_camera": round(max(latencies) * 1000) if latencies else None,
        "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0)),
        "rss_mib": round(rss),
        "detect_interval": max(d["detect_interval"] or 1 for _, d in last.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (cameras spread over them)")
    parser.add_argument("--viewers", type=int, default=0, help="cameras followed frame by frame")
    parser.add_argument(
        "--batch-size", type=int, default=MuxSettings.batch_size, help="frames per inference batch"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as work:
        clip = make_clip(args.source, Path(work))
        columns = (
            "cameras",
            "workers",
            "viewers",
            "batch_size",
            "frames_in_per_s",
            "frames_out_per_s",
            "dropped_per_s",
        )
        columns += ("latency_p95_ms_worst_camera", "cpu_percent", "rss_mib", "detect_interval")
        print(" ".join(columns))
        for cameras in args.cameras:
            viewers, mux = min(args.viewers, cameras), MuxSettings(batch_size=args.batch_size)
            row = run(clip, cameras, args.workers, viewers, args.seconds, args.warmup, mux)
            rows.append(row)
            print(" ".join(str(row[c]) for c in columns), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
