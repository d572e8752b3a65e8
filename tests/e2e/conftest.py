"""Sample media with a real face (scikit-image's astronaut), made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from orchestrator.samples import astronaut, write_sample_video


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("media")
    video = root / "walk.mp4"
    boxes = write_sample_video(video, width=640, height=360, frames=24, fps=12)
    photo = root / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    return {"root": root, "video": video, "video_boxes": boxes, "photo": photo}


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
