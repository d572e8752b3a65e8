"""HLS output: each camera's masked frames encoded once to H.264 and cut into short segments on disk,
with a sliding playlist (old segments deleted), for the HTTP app to serve to video management systems.
"""

from __future__ import annotations

import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ...core.yuv import Frame
from ...video_frames import video_frame
from .outputs import DemandGate

SEGMENT_S = 2
GOP_FPS = 15.0  # spaces keyframes about a segment apart; the frames' own timestamps set the timing
PLAYLIST_SEGMENTS = 5
PLAYLIST = "index.m3u8"
SEGMENT_NAME = re.compile(r"^seg\d{5}\.ts$")


def servable(name: str) -> bool:
    """Only the playlist and its segments leave the folder: no other path is ever served."""
    return name == PLAYLIST or bool(SEGMENT_NAME.match(name))


class HlsWriter:
    """One camera's live HLS rendition (H.264, keyframe at every segment start)."""

    def __init__(self, folder: Path, width: int, height: int, fps: float) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # a restart begins a new rendition
        folder.mkdir(parents=True)
        rate = Fraction(fps).limit_denominator(1001)
        self._out = av.open(
            str(folder / PLAYLIST),
            "w",
            format="hls",
            options={
                "hls_time": str(SEGMENT_S),
                "hls_list_size": str(PLAYLIST_SEGMENTS),
                "hls_flags": "delete_segments+independent_segments",
                "hls_segment_filename": str(folder / "seg%05d.ts"),
            },
        )
        self._video: Any = self._out.add_stream("libx264", rate=rate)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._video.codec_context.gop_size = max(1, round(float(rate) * SEGMENT_S))
        self._video.options = {"preset": "superfast", "tune": "zerolatency"}
        self._time_base = Fraction(1, 1000)
        self._last_pts = -1

    def write(self, frame: Frame, pts_s: float) -> None:
        picture = video_frame(frame)
        pts = max(round(pts_s * 1000), self._last_pts + 1)  # milliseconds, always increasing
        picture.pts, picture.time_base = pts, self._time_base
        self._last_pts = pts
        self._out.mux(self._video.encode(picture))

    def close(self) -> None:
        self._out.mux(self._video.encode(None))
        self._out.close()


class HlsOutputs:
    """HLS writers of every camera of a worker, created on each camera's first frame (with a gate: first
    frame since its rendition was requested) and closed when the requests stop."""

    def __init__(self, root: Path, gate: DemandGate | None = None) -> None:
        self.root = root
        self.gate = gate
        self._writers: dict[str, HlsWriter] = {}

    def publish(self, camera_id: str, frame: Frame, pts_s: float) -> None:
        if self.gate is not None and not self.gate.wants_hls(camera_id):
            self.close_camera(camera_id)
            return
        writer = self._writers.get(camera_id)
        if writer is None:
            h, w = frame.shape[:2]
            writer = self._writers[camera_id] = HlsWriter(self.root / camera_id, w, h, GOP_FPS)
        writer.write(frame, pts_s)

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        pass  # the metadata feed has its own output

    def close_camera(self, camera_id: str) -> None:
        writer = self._writers.pop(camera_id, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for camera_id in list(self._writers):
            self.close_camera(camera_id)
