"""The DeepStream engine: one GPU pipeline for every camera, driven by the camera registry at runtime.

    nvurisrcbin (per camera) -> nvstreammux -> nvinferserver (Triton: cityveil_detect) -> nvtracker (NvDCF)
      -> nvvideoconvert -> RGBA [masking probe] -> nvstreamdemux
      -> per camera: queue -> nvvideoconvert -> nvv4l2h264enc -> rtph264pay -> udpsink -> RTSP mount

`DeepStreamPipeline` is the registry's `StreamControl`: a registered camera gets a source bin, a mux pad, a
demux branch and an RTSP mount while the others keep streaming; a deleted one gives them back.

Each camera's RTP leaves the pipeline through a local UDP port that its RTSP mount reads (DeepStream's own
pattern): encoding stays on NVENC inside the pipeline, and the RTSP server only relays packets, so a slow
RTSP client can never stall the batch. GStreamer and pyds come in through `modules` (see `gst.py`), so the
whole description is tested on CPU with fakes.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from ...core.camera_settings import CameraConfig
from ...core.detections import Detections, ObjectClass
from ...core.gpu_masks import mask_surfaces
from ...core.policy import CameraContext, DetectorTraits
from ...core.profiles import Profile
from ...core.yuv import Frame
from ...inference.detectors import MODELS, Detector, detector_traits
from ...inference.ensemble_contract import DEFAULT_SCALE
from ...inference.repository import ModelRepository
from ..frame_step import StreamAnonymizer, StreamStats
from .config import DeepStreamConfig
from .gst import DeepStreamModules
from .probe import (
    BatchPainter,
    DetectionProbe,
    FrameHandoff,
    MaskFn,
    MaskingProbe,
    map_rgba_surface,
)

log = structlog.get_logger(__name__)

Report = Callable[[str, str, dict[str, Any]], None]  # kind, camera id, data (as the worker supervisor's)
RTP_CAPS = "application/x-rtp, media=video, clock-rate=90000, encoding-name=(string)H264, payload=96"
DEFAULT_FPS = 25.0  # live sources announce no rate before their first frames; hold-over is planned with this


@dataclass(frozen=True)
class EnsembleDetector:
    """A class the ensemble detects inside the pipeline (nvinferserver): the policy plans with its traits,
    and the probes hand its objects to the frame step, so nothing ever calls `detect`."""

    object_class: ObjectClass
    traits: DetectorTraits
    label: str

    def detect(self, frames: list[Frame], scale: float, threshold: float) -> Detections:
        raise RuntimeError("in the DeepStream engine nvinferserver detects; the probes deliver its objects")


def ensemble_detectors(repository: ModelRepository, ensemble: str) -> dict[ObjectClass, Detector]:
    """One detector per class the ensemble serves, with the traits of the model that finds it. nvinferserver
    sends no scale, so the ensemble always runs at its default and plans say so (and size slack by it)."""
    return {
        object_class: EnsembleDetector(
            object_class,
            replace(detector_traits(repository.model(name), family.box_slack), fixed_scale=DEFAULT_SCALE),
            f"{ensemble}/{name}:deepstream",
        )
        for object_class, (name, family) in MODELS.items()
    }


class PipelineError(RuntimeError):
    """The pipeline cannot be built or changed; the message names the element."""


@dataclass
class _Camera:
    camera: CameraConfig
    slot: int  # mux sink pad, demux src pad and UDP port offset; also every frame's pad_index
    stream: StreamAnonymizer
    elements: list[Any]  # the source bin and the branch, in link order
    mux_pad: Any
    demux_pad: Any


class DeepStreamPipeline:
    def __init__(
        self,
        config: DeepStreamConfig,
        modules: DeepStreamModules,
        detectors: dict[ObjectClass, Detector],
        report: Report | None = None,
        map_surface: Callable[[Any, Any, int], Any] = map_rgba_surface,
        mask: MaskFn = mask_surfaces,
        summary_interval_s: float = 60.0,
    ) -> None:
        self.config, self.settings = config, config.settings
        self.gst, self.pyds = modules.Gst, modules.pyds
        self.detectors = detectors
        self.report = report or (lambda *_: None)
        self.status: dict[str, dict[str, Any]] = {}
        self._cameras: dict[str, _Camera] = {}
        self._by_slot: dict[int, _Camera] = {}
        self._lock = threading.RLock()  # the registry calls from HTTP threads, probes from streaming threads
        self.painter = BatchPainter()
        self.handoff = FrameHandoff()
        self.pipeline = self.gst.Pipeline.new("cityveil")
        if self.pipeline is None:
            raise PipelineError("cannot create the GStreamer pipeline")
        self._build(map_surface, mask)
        self.summary_interval_s = summary_interval_s
        self._period_start = time.monotonic()
        self._summaries: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self.masking.after_batch = self._collect_summaries
        self._rtsp_module = modules.GstRtspServer
        self.rtsp = self._rtsp_module.RTSPServer()
        self.rtsp.set_service(str(self.settings.rtsp.port))
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    # --- the fixed part ------------------------------------------------------------------------------------

    def _make(self, factory: str, name: str, **properties: Any) -> Any:
        element = self.gst.ElementFactory.make(factory, name)
        if element is None:
            raise PipelineError(f"cannot create element {name!r} ({factory}): is its plugin installed?")
        for key, value in properties.items():
            element.set_property(key.replace("_", "-"), value)  # GStreamer spells properties with dashes
        self.pipeline.add(element)
        return element

    def _link(self, *elements: Any) -> None:
        for upstream, downstream in itertools.pairwise(elements):
            if not upstream.link(downstream):
                raise PipelineError(f"cannot link {upstream.get_name()} to {downstream.get_name()}")

    def _build(self, map_surface: Callable[[Any, Any, int], Any], mask: MaskFn) -> None:
        s, folder = self.settings, self.config.folder
        self.mux = self._make(
            "nvstreammux",
            "mux",
            batch_size=s.mux.batch_size,
            width=s.mux.width,
            height=s.mux.height,
            batched_push_timeout=s.mux.batched_push_timeout_us,
            live_source=s.mux.live_source,
        )
        infer = self._make("nvinferserver", "infer", config_file_path=str(folder / s.inference.config_file))
        tracker = self._make(
            "nvtracker",
            "tracker",
            ll_lib_file=s.tracker.library,
            ll_config_file=str(folder / s.tracker.config),
            tracker_width=s.tracker.width,
            tracker_height=s.tracker.height,
        )
        convert = self._make("nvvideoconvert", "to_rgba")
        rgba = self._make(
            "capsfilter", "rgba", caps=self.gst.Caps.from_string("video/x-raw(memory:NVMM), format=RGBA")
        )
        self.demux = self._make("nvstreamdemux", "demux")
        self._link(self.mux, infer, tracker, convert, rgba, self.demux)
        buffer_probe = self.gst.PadProbeType.BUFFER
        detection = DetectionProbe(
            self.gst, self.pyds, self, self.handoff, every_frame=s.inference.interval == 0
        )
        infer.get_static_pad("src").add_probe(buffer_probe, detection)
        self.masking = MaskingProbe(self.gst, self.pyds, self, self.handoff, self.painter, map_surface, mask)
        rgba.get_static_pad("src").add_probe(buffer_probe, self.masking)

    # --- processing summaries (the audit trail and the compliance reports are built from them) -----------

    def _collect_summaries(self) -> None:
        """On the masking probe's thread, the only one that writes the stats: take each camera's period."""
        now = time.monotonic()
        if now - self._period_start < self.summary_interval_s:
            return
        for camera_id, entry in list(self._cameras.items()):
            self._summarise(camera_id, entry.stream, now)
        self._period_start = now

    def _summarise(self, camera_id: str, stream: StreamAnonymizer, now: float) -> None:
        stats, stream.stats = stream.stats, StreamStats()
        summary = {
            **stats.as_dict(),
            "interval_s": round(now - self._period_start, 3),
            "profile": stream.context.profile.name,
            "models": stream.model_labels,
        }
        self._summaries.put((camera_id, summary))

    def report_summaries(self) -> None:
        """Hand the collected summaries to `report`, from the caller's thread (the main loop's): reporting
        writes to the database, which a streaming thread must never wait for."""
        while True:
            try:
                camera_id, summary = self._summaries.get_nowait()
            except queue.Empty:
                return
            try:
                self.report("summary", camera_id, summary)
            except Exception:
                self._summaries.put((camera_id, summary))  # not lost: the next call reports it
                raise

    def stream_for(self, source_id: int) -> StreamAnonymizer | None:
        camera = self._by_slot.get(source_id)
        return camera.stream if camera is not None else None

    # --- cameras at runtime (services.cameras.StreamControl) ----------------------------------------------

    def start_camera(self, camera: CameraConfig, profile: Profile) -> None:
        with self._lock:
            if camera.id in self._cameras:
                self.update_camera(camera, profile)
                return
            free = sorted(set(range(self.settings.sources.max_cameras)) - set(self._by_slot))
            if not free:
                raise PipelineError(f"no free source slot for camera {camera.id!r} (sources.max_cameras)")
            self.handoff.forget(free[0])  # what the slot's last camera left in flight is not this one's
            entry = self._add(camera, profile, free[0])
            self._cameras[camera.id], self._by_slot[entry.slot] = entry, entry
            self.status[camera.id] = {"state": "starting", "slot": entry.slot}
            log.info("deepstream_camera_added", camera=camera.id, slot=entry.slot)

    def update_camera(self, camera: CameraConfig, profile: Profile) -> None:
        with self._lock:
            entry = self._cameras.get(camera.id)
            if entry is None:
                self.start_camera(camera, profile)
            elif (camera.source, camera.loop) != (entry.camera.source, entry.camera.loop):
                self.stop_camera(camera.id)  # a new source is a new source bin
                self.start_camera(camera, profile)
            else:  # profile or zones: the next frame is planned with them; the old profile's period ends
                self._summarise(camera.id, entry.stream, time.monotonic())
                entry.camera, entry.stream = camera, self._stream(camera, profile)

    def stop_camera(self, camera_id: str) -> None:
        with self._lock:
            entry = self._cameras.pop(camera_id, None)
            if entry is None:
                return
            del self._by_slot[entry.slot]
            self.status.pop(camera_id, None)
            self._summarise(camera_id, entry.stream, time.monotonic())
            self.rtsp.get_mount_points().remove_factory(f"/{camera_id}")
            for element in entry.elements:
                element.set_state(self.gst.State.NULL)
            # The mux must not wait for a batch slot this source will never fill again.
            entry.mux_pad.send_event(self.gst.Event.new_flush_stop(False))
            self.mux.release_request_pad(entry.mux_pad)
            self.demux.release_request_pad(entry.demux_pad)
            for element in entry.elements:
                self.pipeline.remove(element)
            log.info("deepstream_camera_removed", camera=camera_id, slot=entry.slot)

    def _stream(self, camera: CameraConfig, profile: Profile) -> StreamAnonymizer:
        mux = self.settings.mux
        geometry = camera.geometry.to_geometry() if camera.geometry else None
        context = CameraContext(profile, mux.width, mux.height, DEFAULT_FPS, geometry, camera.zones())
        return StreamAnonymizer(context, self.detectors, name=camera.id, painter=self.painter)

    def _add(self, camera: CameraConfig, profile: Profile, slot: int) -> _Camera:
        """A camera's source bin and output branch, linked into the running pipeline. On any failure all
        that was made for it is taken out again, so the slot stays usable and the others run on."""
        s = self.settings
        elements: list[tuple[str, str, dict[str, Any]]] = [
            (
                "nvurisrcbin",
                f"source_{slot}",
                {
                    "uri": camera.source,
                    "file_loop": camera.loop,
                    "rtsp_reconnect_interval": s.sources.reconnect_interval_s,
                },
            ),
            ("queue", f"queue_{slot}", {"leaky": 2, "max_size_buffers": 4}),  # a late encoder drops frames
            ("nvvideoconvert", f"to_nv12_{slot}", {}),
            (
                "nvv4l2h264enc",
                f"encoder_{slot}",
                {
                    "bitrate": s.encoder.bitrate_bps,
                    "iframeinterval": s.encoder.iframe_interval,
                    "insert_sps_pps": True,
                },
            ),
            ("rtph264pay", f"pay_{slot}", {"pt": 96}),
            (
                "udpsink",
                f"udp_{slot}",
                {"host": "127.0.0.1", "port": s.rtsp.udp_base_port + slot, "sync": False, "async": False},
            ),
        ]
        made: list[Any] = []
        requested: list[tuple[Any, Any]] = []  # (element, request pad)
        try:
            for factory, name, properties in elements:
                made.append(self._make(factory, name, **properties))
            source, branch = made[0], made[1:]
            mux_pad = self._request(self.mux, f"sink_{slot}", requested)
            source.connect("pad-added", self._on_source_pad, mux_pad)
            demux_pad = self._request(self.demux, f"src_{slot}", requested)
            if demux_pad.link(branch[0].get_static_pad("sink")) != self.gst.PadLinkReturn.OK:
                raise PipelineError(f"cannot link nvstreamdemux 'demux' src_{slot} to queue_{slot}")
            self._link(*branch)
        except Exception:
            for element, pad in requested:
                element.release_request_pad(pad)
            for element in made:
                element.set_state(self.gst.State.NULL)
                self.pipeline.remove(element)
            raise
        self._mount(camera.id, s.rtsp.udp_base_port + slot)
        for element in [*branch, source]:
            element.sync_state_with_parent()
        return _Camera(camera, slot, self._stream(camera, profile), made, mux_pad, demux_pad)

    @staticmethod
    def _request(element: Any, name: str, requested: list[tuple[Any, Any]]) -> Any:
        pad = element.request_pad_simple(name)
        if pad is None:
            raise PipelineError(f"{element.get_name()!r} gave no request pad {name}")
        requested.append((element, pad))
        return pad

    def _mount(self, camera_id: str, udp_port: int) -> None:
        factory = self._rtsp_module.RTSPMediaFactory()
        factory.set_launch(f'( udpsrc name=pay0 port={udp_port} buffer-size=524288 caps="{RTP_CAPS}" )')
        factory.set_shared(True)
        self.rtsp.get_mount_points().add_factory(f"/{camera_id}", factory)

    def _on_source_pad(self, _source: Any, pad: Any, mux_pad: Any) -> None:
        """nvurisrcbin exposes its decoded video pad once the stream is known; only then can it be linked."""
        if pad.link(mux_pad) != self.gst.PadLinkReturn.OK:
            log.error("deepstream_source_unlinked", pad=pad.get_name())

    # --- bus ------------------------------------------------------------------------------------------

    def _camera_of(self, element: Any) -> str | None:
        """The camera whose source bin or branch holds `element` (errors come from deep inside bins)."""
        while element is not None:
            name = element.get_name()
            for camera_id, entry in self._cameras.items():
                if any(e.get_name() == name for e in entry.elements):
                    return camera_id
            element = element.get_parent()
        return None

    def _on_message(self, _bus: Any, message: Any) -> bool:
        types = self.gst.MessageType
        if message.type not in (types.ERROR, types.WARNING):
            return True
        error, debug = message.parse_error() if message.type == types.ERROR else message.parse_warning()
        level = "error" if message.type == types.ERROR else "warning"
        with self._lock:
            camera_id = self._camera_of(message.src)
            affected = [camera_id] if camera_id is not None else list(self._cameras)
            for affected_id in affected:
                if level == "error":
                    self.status[affected_id] = {
                        **self.status.get(affected_id, {}),
                        "state": "error",
                        "error": error.message,
                    }
                    self.report("status", affected_id, self.status[affected_id])  # /status and /metrics
                self.report("event", affected_id, {"action": f"stream_{level}", "error": error.message})
        getattr(log, level)(
            "deepstream_bus_" + level,
            camera=camera_id,
            element=message.src.get_name(),
            error=error.message,
            debug=debug,
        )
        return True

    # --- running -------------------------------------------------------------------------------------

    def start(self) -> None:
        self.rtsp.attach(None)
        if self.pipeline.set_state(self.gst.State.PLAYING) == self.gst.StateChangeReturn.FAILURE:
            raise PipelineError("the pipeline refused to start (see the bus errors above)")

    def stop(self) -> None:
        self.pipeline.set_state(self.gst.State.NULL)

    @property
    def cameras(self) -> dict[str, int]:
        """Running cameras and their source slots."""
        with self._lock:
            return {camera_id: entry.slot for camera_id, entry in self._cameras.items()}
