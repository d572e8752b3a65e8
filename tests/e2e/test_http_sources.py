"""Cameras over HTTP: an MJPEG stream and an HLS playlist served by a real HTTP server, read by the
project's LiveSource (PyAV), as it reads IP cameras and video gateways."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest
from polling import wait_for

from orchestrator.dataplane.live.outputs import MJPEG_BOUNDARY, encode_jpeg
from orchestrator.dataplane.live.sources import LiveSource, SourceSettings, SourceState
from orchestrator.samples import write_sample_video

W, H = 160, 96


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files from a folder (the HLS rendition) and, at /stream.mjpeg, an endless MJPEG camera."""

    def do_GET(self) -> None:
        if self.path != "/stream.mjpeg":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
        self.end_headers()
        n = 0
        try:
            while True:
                frame = np.full((H, W, 3), (n * 9) % 256, np.uint8)
                jpeg = encode_jpeg(frame, 80)
                header = (
                    f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                )
                self.wfile.write(header.encode() + jpeg + b"\r\n")
                n += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("http")
    clip = root / "clip.mp4"
    write_sample_video(clip, W, H, frames=48, fps=12, face_px=40, audio=False)
    with (
        av.open(str(clip)) as source,
        av.open(
            str(root / "index.m3u8"), "w", format="hls", options={"hls_time": "1", "hls_list_size": "0"}
        ) as hls,
    ):
        video = hls.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for frame in source.decode(video=0):
            hls.mux(video.encode(frame.reformat(format="yuv420p")))
        hls.mux(video.encode(None))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("path", ["/stream.mjpeg", "/index.m3u8"], ids=["mjpeg", "hls"])
def test_an_http_camera_delivers_frames(http_camera: str, path: str) -> None:
    source = LiveSource("web", SourceSettings(http_camera + path, queue_frames=64)).start()
    try:
        frames = []
        assert wait_for(lambda: bool(frames.extend(source.take()) or len(frames) >= 10), 20)
        # The recorded HLS playlist is read as fast as it decodes and may already have ended (a camera's
        # never does, so the source reconnects): the frames it delivered are what counts.
        assert source.state is SourceState.LIVE or source.stats.last_error == "web: the stream ended"
        assert frames[0].pixels.shape == (H, W, 3)
    finally:
        source.stop()
