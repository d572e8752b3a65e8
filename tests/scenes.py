"""Generated test scenes with something to find: faces of several sizes and a plate-like sign."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.samples import astronaut, background, face_patch


def street(width: int = 640, height: int = 360) -> np.ndarray:
    """Faces of three sizes and a plate-like sign on the sample road."""
    frame = background(width, height)
    for x, size in ((40, 120), (260, 60), (420, 30)):
        patch = face_patch(size)
        frame[60 : 60 + patch.shape[0], x : x + patch.shape[1]] = patch
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle((400, 260, 560, 300), fill=(245, 245, 245), outline=(0, 0, 0), width=2)
    draw.text((415, 268), "AB 123 CD", fill=(0, 0, 0), font_size=24)
    return np.asarray(image).copy()


def sample_frames() -> list[np.ndarray]:
    """Three 640x360 frames with faces of several sizes and a plate-like sign."""
    photo = np.asarray(Image.fromarray(astronaut()).resize((640, 360)))
    return [street(), photo.copy(), np.fliplr(street()).copy()]
