"""Sample media with a real face, for the demo and the tests (the photograph ships with scikit-image).

The face is the astronaut portrait from `skimage.data` (public domain, NASA), pasted onto a plain street-like
background so that what must be masked is known exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from skimage import data

FACE_CROP = (slice(30, 210), slice(150, 310))  # rows, cols of the astronaut's head in the 512x512 photo


def astronaut() -> np.ndarray:
    return np.asarray(data.astronaut())


def face_patch(height: int) -> np.ndarray:
    """The astronaut's head, resized to `height` pixels (nearest-neighbour keeps it dependency-free)."""
    head = astronaut()[FACE_CROP]
    width = round(height * head.shape[1] / head.shape[0])
    rows = np.arange(height) * head.shape[0] // height
    cols = np.arange(width) * head.shape[1] // width
    return head[rows][:, cols]


def background(width: int, height: int) -> np.ndarray:
    """A grey road with lane markings under a lighter sky: plain, but not flat."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = np.linspace(170, 90, height, dtype=np.uint8)[:, None, None]
    frame[int(height * 0.8) : int(height * 0.8) + 4, ::40] = 230
    return frame


def face_track(frame_index: int, frames: int, width: int, height: int, size: int) -> tuple[int, int]:
    """Top-left corner of the face on a frame: it walks from left to right."""
    x = int((width - size) * frame_index / max(1, frames - 1))
    return x, (height - size) // 2


def write_sample_video(
    path: Path,
    width: int = 640,
    height: int = 360,
    frames: int = 30,
    fps: int = 15,
    face_px: int = 96,
    audio: bool = True,
    walking: bool = True,
) -> list[tuple[int, int, int, int]]:
    """An H.264 clip (with an AAC tone when `audio`) of a face crossing the frame (or standing in its
    middle when not `walking`); returns the face's box on each frame."""
    patch = face_patch(face_px)
    ph, pw = patch.shape[:2]
    boxes = []
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i in range(frames):
            frame = background(width, height)
            x, y = face_track(i if walking else frames // 2, frames, width, height, pw)
            frame[y : y + ph, x : x + pw] = patch
            boxes.append((x, y, x + pw, y + ph))
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            _write_tone(out, sound, seconds=Fraction(frames, fps))
    return boxes


def _write_tone(out: av.container.OutputContainer, stream: av.audio.AudioStream, seconds: Fraction) -> None:
    rate = 48000
    samples = int(rate * seconds)
    t = np.arange(samples) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
    step = 1024
    for start in range(0, samples, step):
        chunk = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(tone[:, start : start + step]), format="fltp", layout="mono"
        )
        chunk.sample_rate = rate
        chunk.pts = start
        out.mux(stream.encode(chunk))
    out.mux(stream.encode(None))
