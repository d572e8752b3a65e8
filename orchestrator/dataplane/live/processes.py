"""Worker processes and their supervisor.

Each worker process runs a set of cameras (sources, the shared frame step, one JPEG encode per frame)
and sends only masked, encoded frames to the HTTP process through a pipe, with the telemetry the control
plane audits. Cameras are started, changed and stopped at runtime through a command pipe. The
supervisor restarts a worker that dies with the cameras it had; the other workers never notice.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from ...core.camera_settings import CameraConfig
from ...core.policy import CameraContext
from ...core.profiles import MASKABLE_CLASSES, Profile
from ...inference.onnx_backend import RuntimeOptions
from ...inference.triton_options import TritonOptions
from ...logging_setup import configure_logging
from ..embedded import EmbeddedEngine
from ..frame_step import StreamAnonymizer
from .hls import HlsOutputs
from .metadata import AnonymousIds, MetadataBuilder
from .outputs import CameraOutputs, Demand, DemandGate, FanOut, encode_jpeg
from .sources import LiveSource, SourceSettings
from .telemetry import Telemetry
from .worker import LiveCamera, LiveWorker, MuxSettings

log = structlog.get_logger(__name__)

RESTART_DELAY_S = 1.0
DEMAND_PERIOD_S = 0.25  # how soon a new viewer's camera starts being encoded
JPEG_QUALITY = 80

Report = Callable[[str, str, dict[str, Any]], None]  # kind ("event", "status", "summary"), camera, data


@dataclass(frozen=True)
class Assignment:
    """A camera as a worker runs it: its settings (real source) and its resolved profile."""

    camera: CameraConfig
    profile: Profile

    def payload(self) -> dict[str, Any]:
        return {
            "camera": self.camera.model_dump(mode="json"),
            "profile": self.profile.model_dump(mode="json"),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Assignment:
        return cls(CameraConfig.model_validate(data["camera"]), Profile.model_validate(data["profile"]))


class _PipeOutput:
    """Encode once in the worker (when the frame is in demand); the HTTP process only forwards bytes."""

    def __init__(self, connection: Connection, stop: threading.Event, gate: DemandGate) -> None:
        self.connection = connection
        self.stop = stop
        self.gate = gate
        self._lock = threading.Lock()

    def publish(self, camera_id: str, frame: Any, pts_s: float) -> None:
        if self.gate.wants_jpeg(camera_id):
            self.send(("frame", camera_id, encode_jpeg(frame, JPEG_QUALITY), pts_s))

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        self.send(("metadata", camera_id, data))

    def report(self, kind: str, camera_id: str, data: dict[str, Any]) -> None:
        self.send((kind, camera_id, data))

    def send(self, message: tuple[Any, ...]) -> None:
        if self.stop.is_set():
            return
        try:
            with self._lock:
                self.connection.send(message)
        except (BrokenPipeError, EOFError):  # the HTTP process is gone: nobody to serve, stop quietly
            self.stop.set()


def _make_stream(
    engine: EmbeddedEngine, assignment: Assignment, width: int, height: int, fps: float
) -> StreamAnonymizer:
    camera = assignment.camera
    geometry = camera.geometry.to_geometry() if camera.geometry else None
    context = CameraContext(assignment.profile, width, height, fps, geometry, camera.zones())
    return engine.stream(context, name=camera.id)


class _WorkerCameras:
    """The worker process's side of the command pipe: start, change and stop cameras between batches."""

    def __init__(
        self,
        worker: LiveWorker,
        engine: EmbeddedEngine,
        telemetry: Telemetry,
        hls: HlsOutputs | None,
        gate: DemandGate,
    ) -> None:
        self.worker = worker
        self.engine = engine
        self.telemetry = telemetry
        self.hls = hls
        self.gate = gate
        self.ids = AnonymousIds()  # one key per worker run: ids do not survive a restart either
        self.running: dict[str, Assignment] = {}

    def start(self, assignment: Assignment) -> None:
        camera = assignment.camera
        if camera.id in self.running:
            self.update(assignment)
            return
        live = LiveCamera(
            camera.id,
            LiveSource(camera.id, SourceSettings(camera.source, loop=camera.loop)),
            partial(_make_stream, self.engine, assignment),
            MetadataBuilder(camera.id, self.ids, camera.count_zones),
        )
        self.running[camera.id] = assignment
        self.worker.add(live)
        self.telemetry.started(live, {"profile": assignment.profile.name})

    def update(self, assignment: Assignment) -> None:
        camera, old = assignment.camera, self.running.get(assignment.camera.id)
        if old is None:
            self.start(assignment)
            return
        if (old.camera.source, old.camera.loop) != (camera.source, camera.loop):
            self.stop(camera.id, "source changed")  # a new source is a new stream
            self.start(assignment)
            return
        live = next(c for c in self.worker.cameras if c.camera_id == camera.id)
        self.telemetry.harvest(live)
        # The frame step is rebuilt on the next frame with the new profile and zones; the source runs on.
        live.make_stream, live.stream = partial(_make_stream, self.engine, assignment), None
        live.metadata = MetadataBuilder(camera.id, self.ids, camera.count_zones)
        self.running[camera.id] = assignment
        self.telemetry.send(
            "event", camera.id, {"action": "stream_reconfigured", "profile": assignment.profile.name}
        )

    def reload_models(self) -> None:
        """A model version was activated: load it, then rebuild each camera's frame step on its next
        frame (as a profile change does: it detects on that frame, so masking goes on without a gap)."""
        try:
            self.engine.reload()
        except Exception as exc:  # the loaded versions keep serving; the activation was validated before
            log.error("model_reload_failed", error=repr(exc))
            return
        for live in self.worker.cameras:
            self.telemetry.harvest(live)
            live.stream = None
            self.telemetry.send("event", live.camera_id, {"action": "models_reloaded"})

    def stop(self, camera_id: str, reason: str) -> None:
        live = self.worker.remove(camera_id)
        self.running.pop(camera_id, None)
        if live is not None:
            self.telemetry.stopped(live, reason)
        if self.hls is not None:
            self.hls.close_camera(camera_id)

    def apply(self, command: tuple[Any, ...]) -> None:
        kind, *args = command
        if kind == "start":
            self.start(Assignment.from_payload(args[0]))
        elif kind == "update":
            self.update(Assignment.from_payload(args[0]))
        elif kind == "stop":
            self.stop(args[0], "camera removed")
        elif kind == "reload_models":
            self.reload_models()
        elif kind == "demand":
            self.gate.demand = args[0]


def worker_main(
    assignments: list[dict[str, Any]],
    connection: Connection,
    commands: Connection,
    mux: MuxSettings,
    hls_root: str | None = None,
    summary_interval_s: float = 60.0,
    inference_threads: int | None = None,
    triton: TritonOptions | None = None,
) -> None:
    """The body of a worker process (spawned: it builds its own engine and sources)."""
    configure_logging("info")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    # Every detector is loaded: a camera registered later may use any profile.
    engine = EmbeddedEngine(
        classes=list(MASKABLE_CLASSES), options=RuntimeOptions(threads=inference_threads), triton=triton
    )
    gate = DemandGate()
    pipe = _PipeOutput(connection, stop, gate)
    hls = HlsOutputs(Path(hls_root), gate) if hls_root else None
    worker = LiveWorker([], FanOut(pipe, hls) if hls else pipe, mux)
    telemetry = Telemetry(pipe.report, summary_interval_s=summary_interval_s)
    cameras = _WorkerCameras(worker, engine, telemetry, hls, gate)
    for payload in assignments:
        cameras.start(Assignment.from_payload(payload))

    def between_steps() -> None:
        try:
            while commands.poll():
                cameras.apply(commands.recv())
        except (EOFError, OSError):
            stop.set()  # the supervisor is gone
        telemetry.tick(worker.cameras)

    try:
        worker.run(stop, between_steps)
    finally:
        for camera_id in list(cameras.running):
            cameras.stop(camera_id, "worker stopping")
        if hls is not None:
            hls.close()
        engine.close()  # the Triton backend's shared-memory regions are unregistered and freed


@dataclass
class _Worker:
    cameras: dict[str, Assignment] = field(default_factory=dict)
    process: Any = None  # multiprocessing.Process (spawn context)
    commands: Connection | None = None
    restarts: int = 0
    demand: Demand | None = None  # what the worker was last told


class Supervisor:
    """Starts the worker processes, places cameras on them, forwards their frames to the outputs and
    their telemetry to `report`, and restarts the ones that die."""

    def __init__(
        self,
        outputs: CameraOutputs,
        workers: int = 1,
        mux: MuxSettings | None = None,
        hls_root: Path | None = None,
        report: Report | None = None,
        summary_interval_s: float = 60.0,
        camera_outputs: list[Any] | None = None,
        triton: TritonOptions | None = None,  # None: ONNX Runtime in each worker
    ) -> None:
        self.workers = [_Worker() for _ in range(max(1, workers))]
        self.triton = triton
        self.outputs = outputs
        self.mux = mux or MuxSettings()
        self.hls_root = str(hls_root) if hls_root is not None else None
        self.report = report or (lambda kind, camera_id, data: None)
        self.summary_interval_s = summary_interval_s
        # Outputs that keep per-camera state (the RTSP server's mounts): told of cameras coming and going.
        self.camera_outputs = camera_outputs or []
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._forwarders: list[threading.Thread] = []

    def start(self) -> Supervisor:
        for worker in self.workers:
            self._spawn(worker)
        self._monitor.start()
        return self

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]

    def alive(self) -> bool:
        """Every worker process runs (a dead one is being restarted)."""
        return all(w.process is not None and w.process.is_alive() for w in self.workers)

    def camera_ids(self) -> list[str]:
        with self._lock:
            return [camera_id for w in self.workers for camera_id in w.cameras]

    # The data plane side of the camera registry (services.cameras.StreamControl).
    def start_camera(self, camera: CameraConfig, profile: Profile) -> None:
        with self._lock:
            if self._worker_of(camera.id) is not None:
                self.update_camera(camera, profile)
                return
            worker = min(self.workers, key=lambda w: len(w.cameras))
            assignment = worker.cameras[camera.id] = Assignment(camera, profile)
            self.outputs.register(camera.id)
            for output in self.camera_outputs:
                output.add_camera(camera.id)
            self._command(worker, ("start", assignment.payload()))

    def update_camera(self, camera: CameraConfig, profile: Profile) -> None:
        with self._lock:
            worker = self._worker_of(camera.id)
            if worker is None:
                self.start_camera(camera, profile)
                return
            assignment = worker.cameras[camera.id] = Assignment(camera, profile)
            self._command(worker, ("update", assignment.payload()))

    def reload_models(self) -> None:
        """Every worker loads the serving model versions again and rebuilds its streams' frame steps."""
        with self._lock:
            for worker in self.workers:
                self._command(worker, ("reload_models",))

    def stop_camera(self, camera_id: str) -> None:
        with self._lock:
            worker = self._worker_of(camera_id)
            if worker is None:
                return
            del worker.cameras[camera_id]
            self._command(worker, ("stop", camera_id))
            for output in self.camera_outputs:
                output.remove_camera(camera_id)
            self.outputs.unregister(camera_id)

    def _worker_of(self, camera_id: str) -> _Worker | None:
        return next((w for w in self.workers if camera_id in w.cameras), None)

    def _command(self, worker: _Worker, command: tuple[Any, ...]) -> None:
        try:
            if worker.commands is not None:
                worker.commands.send(command)
        except (BrokenPipeError, OSError):
            pass  # the worker died: it is restarted with its cameras as they are now

    def _spawn(self, worker: _Worker) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        command_receiver, command_sender = self._context.Pipe(duplex=False)
        payload = [a.payload() for a in worker.cameras.values()]
        process = self._context.Process(
            target=worker_main,
            args=(
                payload,
                sender,
                command_receiver,
                self.mux,
                self.hls_root,
                self.summary_interval_s,
                # The workers share the cores: more inference threads than cores only contend.
                max(1, (os.cpu_count() or 1) // len(self.workers)),
                self.triton,
            ),
            daemon=True,
        )
        process.start()
        sender.close()  # the child holds the only sending end: its death ends our reads
        command_receiver.close()
        worker.process, worker.commands, worker.demand = process, command_sender, None
        forwarder = threading.Thread(target=self._forward, args=(receiver,), daemon=True)
        forwarder.start()
        self._forwarders = [t for t in self._forwarders if t.is_alive()] + [forwarder]

    def _forward(self, receiver: Connection) -> None:
        while True:
            try:
                kind, camera_id, *payload = receiver.recv()
            except (EOFError, OSError):
                return
            if kind == "frame":
                self.outputs.publish_encoded(camera_id, *payload)
            elif kind == "metadata":
                self.outputs.publish_metadata(camera_id, *payload)
            else:
                self.report(kind, camera_id, payload[0])

    def _watch(self) -> None:
        while not self._stopping.wait(DEMAND_PERIOD_S):
            for worker in self.workers:
                if worker.process is not None and not worker.process.is_alive():
                    self._restart(worker)
            self._tell_demand()

    def _tell_demand(self) -> None:
        """Each worker learns which of its cameras have viewers (MJPEG, RTSP) or HLS requests."""
        demand = self.outputs.demand()
        with self._lock:
            for worker in self.workers:
                cameras = frozenset(worker.cameras)
                mine = Demand(demand.streaming & cameras, demand.hls & cameras)
                if mine != worker.demand:
                    worker.demand = mine
                    self._command(worker, ("demand", mine))

    def _restart(self, worker: _Worker) -> None:
        worker.restarts += 1
        exitcode = worker.process.exitcode
        with self._lock:
            cameras = list(worker.cameras)
        log.error("worker_died", exitcode=exitcode, cameras=cameras, restarts=worker.restarts)
        for camera_id in cameras:
            self.report(
                "event",
                camera_id,
                {"action": "stream_failed", "state": "restarting", "error": f"worker exited with {exitcode}"},
            )
        time.sleep(RESTART_DELAY_S)
        if not self._stopping.is_set():
            with self._lock:
                self._spawn(worker)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            if worker.process is not None:
                worker.process.join(timeout_s)
                if worker.process.is_alive():
                    worker.process.kill()
        for forwarder in self._forwarders:  # the workers' last words (streams stopped) are reported
            forwarder.join(timeout_s)
