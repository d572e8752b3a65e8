"""RTSP output: an in-process GStreamer RTSP server with one mount per camera, `rtsp://HOST:PORT/<camera>`.

Each camera's mount is a shared media: the first client starts one H.264 encode of the camera's masked
JPEGs (from `CameraOutputs`, so nothing unmasked can reach it) and every later client receives the same
packets. With no client connected nothing is decoded or encoded. GStreamer is an optional extra: without
PyGObject or the plugins, `rtsp_unavailable_reason()` says what is missing and everything else works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import structlog

from .outputs import CameraOutputs

log = structlog.get_logger(__name__)

KEYFRAME_INTERVAL = 30  # frames (a client that starts playing is sent one at once: see _on_play)
FEED_WAIT_S = 0.5  # how often an idle feed looks at whether it should stop
CAMERA_PIPELINE = (
    # is-live + do-timestamp: buffers carry the running time at which they arrive, so a worker restart
    # (its source timestamps start over) neither stalls the stream nor sends time backwards.
    # max-buffers + leaky-type=downstream: an encoder that falls behind loses the oldest frames, never stalls.
    "( appsrc name=src is-live=true do-timestamp=true format=time caps=image/jpeg,framerate=0/1"
    " max-buffers=8 leaky-type=downstream"
    " ! jpegdec ! videoconvert ! video/x-raw,format=I420"
    f" ! x264enc tune=zerolatency speed-preset=superfast key-int-max={KEYFRAME_INTERVAL}"
    # byte-stream: x264 writes SPS/PPS inside every keyframe, for clients that join a running stream.
    # Not rtph264pay's config-interval: it puts them between the slices of a keyframe (zerolatency encodes
    # a frame as several slices), and decoders then show the rest of that frame green.
    " ! video/x-h264,stream-format=byte-stream ! rtph264pay name=pay0 pt=96 )"
)
# Each client gets the file from its start, with SPS/PPS from the SDP (no config-interval, as above).
FILE_PIPELINE = '( filesrc location="{}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )'
ELEMENTS = ("appsrc", "jpegdec", "videoconvert", "x264enc", "rtph264pay", "filesrc", "qtdemux", "h264parse")
NEEDS = (
    "PyGObject (pip install 'cityveil[rtsp]') and GStreamer with its RTSP server (Debian: "
    "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base, -good, -ugly and -bad)"
)


class RtspUnavailable(RuntimeError):
    """GStreamer's RTSP server cannot run in this environment; the message says what is missing."""


def _gstreamer() -> SimpleNamespace:
    """GLib, Gst, GstVideo and GstRtspServer, imported on first use (RTSP is optional: never at import)."""
    try:
        import gi

        for namespace in ("Gst", "GstVideo", "GstRtspServer"):
            gi.require_version(namespace, "1.0")
        from gi.repository import GLib, Gst, GstRtspServer, GstVideo
    except (ImportError, ValueError) as exc:  # ValueError: a typelib (introspection data) is missing
        raise RtspUnavailable(f"RTSP is unavailable ({exc}); it needs {NEEDS}") from exc
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        raise RtspUnavailable(f"RTSP is unavailable (no GStreamer {', '.join(missing)}); it needs {NEEDS}")
    return SimpleNamespace(GLib=GLib, Gst=Gst, GstVideo=GstVideo, GstRtspServer=GstRtspServer)


def rtsp_unavailable_reason() -> str | None:
    """None when the RTSP output can run here, otherwise a sentence saying what is missing."""
    try:
        _gstreamer()
    except RtspUnavailable as exc:
        return str(exc)
    return None


class RtspServer:
    """Serves `rtsp://HOST:PORT/<camera_id>` for the cameras added, from `outputs`; listens at once.

    `port=0` takes a free port (read it back from `.port`). Mounts can be added and removed while
    clients are connected; `close()` stops every feed and disconnects every client.
    """

    def __init__(
        self,
        outputs: CameraOutputs,
        host: str = "0.0.0.0",
        port: int = 8554,
        on_play: Callable[[str, str], None] | None = None,
    ) -> None:
        self._gi = _gstreamer()
        self.outputs = outputs
        self.on_play = on_play  # (mount name, client address) for every play request: the audit trail
        self.host = host
        self._feeds: dict[str, list[threading.Event]] = {}  # camera id -> a stop event per running encode
        self._lock = threading.Lock()
        self._closed = False
        self._server = self._gi.GstRtspServer.RTSPServer()
        self._server.set_address(host)
        self._server.set_service(str(port))
        self._server.connect("client-connected", self._on_client)
        context = self._gi.GLib.MainContext.new()  # our own: the caller's main loop, if any, is left alone
        try:  # binds now, so a port in use is a clear error here rather than a silent failure later
            self._source: Any = self._server.create_source(None)
        except self._gi.GLib.Error as exc:
            raise OSError(f"the RTSP server cannot listen on {host}:{port}: {exc.message}") from exc
        self._source.attach(context)
        self.port: int = self._server.get_bound_port()
        self._loop = self._gi.GLib.MainLoop.new(context, False)
        self._thread = threading.Thread(target=self._loop.run, name="rtsp-server", daemon=True)
        self._thread.start()
        log.info("rtsp_listening", host=host, port=self.port)

    def url(self, camera_id: str, host: str | None = None) -> str:
        return f"rtsp://{host or self.host}:{self.port}/{camera_id}"

    def add_camera(self, camera_id: str) -> None:
        """Serve a camera's masked frames at `/<camera_id>` (adding it again changes nothing)."""
        self.outputs.register(camera_id)  # a feed follows a registered camera until it is unregistered
        with self._lock:
            if camera_id in self._feeds:
                return
            self._feeds[camera_id] = []
        factory = self._mount(camera_id, CAMERA_PIPELINE, shared=True)
        factory.connect("media-configure", self._on_camera_media, camera_id)

    def remove_camera(self, camera_id: str) -> None:
        """Unmount a camera; clients still connected reach the end of their stream."""
        self._server.get_mount_points().remove_factory(f"/{camera_id}")
        with self._lock:
            stops = self._feeds.pop(camera_id, [])
        for stop in stops:
            stop.set()

    def encodes(self, camera_id: str) -> int:
        """Running encodes of a camera: 1 while it has clients (they all share it), else 0."""
        with self._lock:
            return len(self._feeds.get(camera_id, []))

    def serve_file(self, name: str, path: Path) -> None:
        """Serve an MP4 (H.264) file at `/<name>`, from its start for each client, once (tests, demos)."""
        location = str(path.resolve()).replace("\\", "\\\\").replace('"', '\\"')
        self._mount(name, FILE_PIPELINE.format(location), shared=False)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stops = [stop for feeds in self._feeds.values() for stop in feeds]
        for stop in stops:
            stop.set()
        remove = self._gi.GstRtspServer.RTSPFilterResult.REMOVE
        self._server.client_filter(lambda *_: remove)  # disconnects every client
        self._source.destroy()
        self._loop.quit()
        self._thread.join(5)
        self._source = None  # the listening socket closes with the last reference to its source

    def _mount(self, name: str, launch: str, shared: bool) -> Any:
        factory = self._gi.GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(shared)
        self._server.get_mount_points().add_factory(f"/{name}", factory)
        return factory

    def _on_client(self, _server: Any, client: Any) -> None:
        client.connect("play-request", self._on_play)

    def _on_play(self, client: Any, context: Any) -> None:
        """A client starts playing: ask the encoder for a keyframe now. A client joining a shared stream
        can decode nothing before one, and would otherwise wait up to KEYFRAME_INTERVAL frames. (For a
        file mount the request stops at h264parse, which only repeats SPS/PPS: harmless.)"""
        if self.on_play is not None:
            try:
                self.on_play(context.uri.abspath.lstrip("/"), client.get_connection().get_ip())
            except Exception:  # the stream must not die of its audit trail; the failure is logged
                log.exception("rtsp_play_not_recorded")
        if context.media is None:
            return
        payloader = context.media.get_element().get_child_by_name("pay0")
        event = self._gi.GstVideo.video_event_new_upstream_force_key_unit(
            self._gi.Gst.CLOCK_TIME_NONE, True, 0
        )
        payloader.get_static_pad("sink").push_event(event)  # travels upstream to the encoder

    def _on_camera_media(self, _factory: Any, media: Any, camera_id: str) -> None:
        """A first client asked for a camera: feed its new media until it is torn down."""
        stop = threading.Event()
        with self._lock:
            if camera_id not in self._feeds or self._closed:
                return
            self._feeds[camera_id].append(stop)
        media.connect("unprepared", lambda *_: stop.set())
        appsrc = media.get_element().get_child_by_name("src")
        log.info("rtsp_encode_started", camera=camera_id)
        threading.Thread(
            target=self._feed, args=(camera_id, appsrc, stop), name=f"rtsp-feed-{camera_id}", daemon=True
        ).start()

    def _feed(self, camera_id: str, appsrc: Any, stop: threading.Event) -> None:
        gst = self._gi.Gst
        try:
            for frame in self.outputs.follow(camera_id, FEED_WAIT_S):
                if stop.is_set():
                    break
                if frame is None:
                    continue
                if appsrc.emit("push-buffer", gst.Buffer.new_wrapped(frame.jpeg)) != gst.FlowReturn.OK:
                    break  # the media is flushing or gone
            appsrc.emit("end-of-stream")
        finally:
            with self._lock:
                feeds = self._feeds.get(camera_id, [])
                if stop in feeds:
                    feeds.remove(stop)
            log.info("rtsp_encode_stopped", camera=camera_id)
