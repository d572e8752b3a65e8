"""A batch job: many inputs (files and folders) -> a mirrored output tree and a JSON report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ... import __version__
from ...core.camera_settings import CameraSettings
from ...core.policy import CameraContext
from ...core.profiles import Profile
from ..embedded import EmbeddedEngine
from .images import IMAGE_PIXEL_BUDGET, IMAGE_SUFFIXES, MediaError, read_image, write_image
from .video import VIDEO_SUFFIXES, NothingToWrite, anonymize_video, output_suffix, probe


@dataclass(frozen=True)
class WorkItem:
    source: Path
    target: Path
    kind: str  # "image" | "video"


def plan_outputs(inputs: list[Path], out_dir: Path, image_format: str) -> list[WorkItem]:
    """Where each input goes. Folders are mirrored (same relative paths and names); raises MediaError."""
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"the output {out_dir} is a file, not a folder")
    items: list[WorkItem] = []
    out_resolved = out_dir.resolve()
    for path in inputs:
        if not path.exists():
            raise MediaError(f"input {path} does not exist")
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and out_resolved not in p.resolve().parents and not p.name.startswith(".")
            )
            pairs = [(p, p.relative_to(path)) for p in files if _kind(p)]
        else:
            if not _kind(path):
                raise MediaError(f"input {path} is neither an image nor a video this tool reads")
            pairs = [(path, Path(path.name))]
        for source, relative in pairs:
            kind = _kind(source)
            suffix = f".{image_format}" if kind == "image" else output_suffix(source)
            items.append(WorkItem(source, out_dir / relative.with_suffix(suffix), kind))
    seen: dict[Path, Path] = {}
    for item in items:
        if item.target.resolve() == item.source.resolve():
            raise MediaError(f"writing {item.target} would overwrite its input: choose another output folder")
        if item.target in seen:
            raise MediaError(f"{seen[item.target]} and {item.source} would both be written to {item.target}")
        seen[item.target] = item.source
    return items


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else ""


@dataclass
class JobReport:
    profile: Profile
    files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cityveil_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "profile": self.profile.model_dump(mode="json"),
            "files": self.files,
            "errors": self.errors,
        }


def run_job(
    items: list[WorkItem],
    engine: EmbeddedEngine,
    profile: Profile,
    camera: CameraSettings | None = None,
    progress: Callable[[int], object] = lambda n: None,
) -> JobReport:
    """Anonymize every item; a bad input is reported and skipped, never half-written.

    `camera` (geometry, privacy zones) applies to every item: footage from one camera.
    """
    camera = camera or CameraSettings()
    geometry = camera.geometry.to_geometry() if camera.geometry else None

    def context(width: int, height: int, fps: float = 25.0) -> CameraContext:
        return CameraContext(profile, width, height, fps, geometry, camera.zones())

    report = JobReport(profile)
    for item in items:
        started = time.perf_counter()
        try:
            if item.kind == "image":
                pixels = read_image(item.source)
                h, w = pixels.shape[:2]
                stream = engine.stream(context(w, h), IMAGE_PIXEL_BUDGET, name=str(item.source))
                result = stream.process([pixels])[0]
                if result.image is not None:
                    write_image(result.image, item.target)
                progress(1)
            else:
                info = probe(item.source)
                stream = engine.stream(
                    context(info.width, info.height, float(info.rate)), name=str(item.source)
                )
                anonymize_video(item.source, item.target, stream, progress, info)
            written = stream.stats.dropped_frames < stream.stats.frames
        except MediaError as exc:
            report.errors.append(str(exc))
            continue
        except NothingToWrite:  # every frame dropped (fail closed): no file, and the report says so
            written = False
        seconds = time.perf_counter() - started
        report.files.append(
            {
                "input": str(item.source),
                "output": str(item.target) if written else None,
                "kind": item.kind,
                **stream.stats.as_dict(),
                "seconds": round(seconds, 3),
                "frames_per_second": round(stream.stats.frames / seconds, 2) if seconds else None,
                "parameters": stream.plan.parameters,  # at the end; the ranges applied are in the stats
                "models": stream.model_labels,
            }
        )
    return report


def count_frames(items: list[WorkItem]) -> int:
    """Frames to process, for the progress bar (videos as their containers declare)."""
    total = 0
    for item in items:
        if item.kind == "image":
            total += 1
        else:
            try:
                total += probe(item.source).frames
            except MediaError:
                continue
    return total
