"""Frames per second of `cityveil anonymize` beside the open-source peer `deface` 1.5.0.

Both tools anonymize the same 1280x720 and 1920x1080 clips in the same run; each measurement is
repeated, alternating which tool goes first, and the medians are printed as a table.

The clips are the first ``--frames`` frames of ``--source`` (by default
``../shared/eval/videos/person-bicycle-car-detection.mp4`` from the repo root) rescaled with PyAV
(libx264, the source's frame rate). If the source is missing, a synthetic clip is generated instead:
the project's sample (``orchestrator.samples``: the astronaut's face walking across a street).

deface runs in its own virtual environment, created on first use under ``benchmarks/.venv-deface``
(``pip install deface==1.5.0 onnxruntime``), forced onto onnxruntime's CPU execution provider.

Figures reported:

* ``cityveil`` and ``deface``: wall clock of the whole command, start-up and model load included;
* ``cityveil (in-process)``: the ``frames_per_second`` in cityveil's own JSON report.

Run from the repo root with the project venv (it needs PyAV)::

    .venv/bin/python benchmarks/bench_video.py --repeats 3 --frames 150 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av

from orchestrator.samples import write_sample_video

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "eval" / "videos" / "person-bicycle-car-detection.mp4"
DEFACE_VENV = REPO / "benchmarks" / ".venv-deface"
DEFACE_PACKAGES = ["deface==1.5.0", "onnxruntime"]
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SYNTHETIC_RATE = 25

CITYVEIL = "cityveil"
CITYVEIL_IN_PROCESS = "cityveil (in-process)"
DEFACE = "deface"


@dataclass
class Clip:
    name: str
    path: Path
    frames: int


@dataclass
class Run:
    clip: str
    tool: str
    repeat: int
    seconds: float
    fps: float


# --- clips -----------------------------------------------------------------------------------------


def write_frames(path: Path, size: tuple[int, int], rate: Fraction, frames: Iterable[av.VideoFrame]) -> int:
    """Re-encode frames to `path` with libx264 at `size`; returns how many."""
    count = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            frame = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            frame.pts, frame.time_base = count, 1 / rate
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count


def source_frames(source: Path, limit: int):
    with av.open(str(source)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= limit:
                return
            yield frame


def source_rate(source: Path) -> Fraction:
    with av.open(str(source)) as container:
        return Fraction(container.streams.video[0].average_rate)


def make_clips(source: Path, frames: int, work: Path) -> tuple[list[Clip], str]:
    """Write one clip per size into `work`; returns them and a line saying where they came from."""
    real = source.is_file()
    if real:
        origin = f"first {frames} frames of {source}"
    else:
        origin = f"SYNTHETIC clip of {frames} frames (the project's sample with a face): {source} is missing"
    clips = []
    for name, (width, height) in SIZES.items():
        path = work / f"clip-{name}.mp4"
        if real:
            count = write_frames(path, (width, height), source_rate(source), source_frames(source, frames))
        else:
            count = len(write_sample_video(path, width, height, frames, SYNTHETIC_RATE, audio=False))
        clips.append(Clip(name, path, count))
    return clips, origin


# --- tools -----------------------------------------------------------------------------------------


def find_cityveil(option: str | None) -> Path:
    candidates = [option] if option else [str(REPO / ".venv" / "bin" / "cityveil"), shutil.which("cityveil")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    sys.exit("bench_video: cityveil CLI not found; pass --cityveil PATH")


def ensure_deface(venv: Path) -> Path:
    """The deface executable in `venv`, creating the venv and installing deface on first use."""
    deface = venv / "bin" / "deface"
    if not deface.is_file():
        print(f"creating {venv} and installing {' '.join(DEFACE_PACKAGES)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *DEFACE_PACKAGES], check=True)
    return deface


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of `command`; its output is discarded unless it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench_video: {' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def run_cityveil(cli: Path, clip: Clip, out: Path, repeat: int) -> list[Run]:
    report_path = out / f"cityveil-{clip.name}.json"
    seconds = timed(
        [
            str(cli),
            "anonymize",
            str(clip.path),
            "-o",
            str(out / f"cityveil-{clip.name}"),
            "--report",
            str(report_path),
            "-q",
        ]
    )
    (report,) = json.loads(report_path.read_text())["files"]
    return [
        Run(clip.name, CITYVEIL, repeat, seconds, clip.frames / seconds),
        Run(clip.name, CITYVEIL_IN_PROCESS, repeat, report["seconds"], report["frames_per_second"]),
    ]


def run_deface(deface: Path, clip: Clip, out: Path, repeat: int) -> list[Run]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    seconds = timed(
        [
            str(deface),
            str(clip.path),
            "-o",
            str(out / f"deface-{clip.name}.mp4"),
            "--execution-provider",
            "CPUExecutionProvider",
        ],
        env=env,
    )
    return [Run(clip.name, DEFACE, repeat, seconds, clip.frames / seconds)]


# --- results ---------------------------------------------------------------------------------------


def medians(runs: list[Run]) -> dict[tuple[str, str], float]:
    groups: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        groups.setdefault((run.clip, run.tool), []).append(run.fps)
    return {key: statistics.median(values) for key, values in groups.items()}


def print_table(median_fps: dict[tuple[str, str], float]) -> None:
    print(f"\n{'clip':<7} {'tool':<22} {'median fps':>10} {'vs deface':>10}")
    for (clip, tool), fps in median_fps.items():
        ratio = f"{fps / median_fps[clip, DEFACE]:.2f}x" if tool != DEFACE else ""
        print(f"{clip:<7} {tool:<22} {fps:>10.2f} {ratio:>10}")


def write_json(
    path: Path, origin: str, clips: list[Clip], runs: list[Run], median_fps: dict[tuple[str, str], float]
) -> None:
    result = {
        "clips_from": origin,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "clips": [{**asdict(clip), "path": str(clip.path)} for clip in clips],
        "runs": [asdict(run) for run in runs],
        "medians": [{"clip": clip, "tool": tool, "fps": fps} for (clip, tool), fps in median_fps.items()],
        "ratio_cityveil_to_deface": {
            clip.name: median_fps[clip.name, CITYVEIL] / median_fps[clip.name, DEFACE] for clip in clips
        },
    }
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="video to rescale into the clips")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and clip (default 3)")
    parser.add_argument("--work", type=Path, help="folder for clips and outputs (default: a temp dir)")
    parser.add_argument("--cityveil", help="cityveil CLI (default: <repo>/.venv/bin/cityveil, then PATH)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace, work: Path) -> None:
    cityveil, deface = find_cityveil(args.cityveil), ensure_deface(DEFACE_VENV)
    clips, origin = make_clips(args.source, args.frames, work)
    print(f"clips: {origin}", flush=True)
    tools = [partial(run_cityveil, cityveil), partial(run_deface, deface)]
    runs: list[Run] = []
    for repeat in range(args.repeats):
        for clip in clips:
            for tool in tools if repeat % 2 == 0 else tools[::-1]:
                new = tool(clip, work, repeat)
                print("  " + ", ".join(f"{r.clip} {r.tool}: {r.fps:.2f} fps" for r in new), flush=True)
                runs += new
    median_fps = medians(runs)
    print_table(median_fps)
    if args.json:
        write_json(args.json, origin, clips, runs, median_fps)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        benchmark(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-video-") as work:
            benchmark(args, Path(work))


if __name__ == "__main__":
    main()
