"""Worker processes and their supervisor.

Each worker process runs a set of cameras (sources, the shared frame step, one JPEG encode per frame)
and sends only masked, encoded frames to the HTTP process through a pipe. The supervisor restarts a
worker that dies; the cameras of the other workers never notice.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from ...core.camera_settings import CameraConfig
from ...core.policy import CameraContext
from ...core.profiles import resolve_profile
from ...logging_setup import configure_logging
from ..embedded import EmbeddedEngine
from ..frame_step import StreamAnonymizer
from .hls import HlsOutputs
from .metadata import AnonymousIds, MetadataBuilder
from .outputs import CameraOutputs, FanOut, encode_jpeg
from .sources import LiveSource, SourceSettings
from .worker import LiveCamera, LiveWorker, MuxSettings

log = structlog.get_logger(__name__)

RESTART_DELAY_S = 1.0
JPEG_QUALITY = 80


class _PipeOutput:
    """Encode once in the worker; the HTTP process only forwards bytes."""

    def __init__(self, connection: Connection, stop: threading.Event) -> None:
        self.connection = connection
        self.stop = stop

    def publish(self, camera_id: str, frame: Any, pts_s: float) -> None:
        self._send(("frame", camera_id, encode_jpeg(frame, JPEG_QUALITY), pts_s))

    def publish_metadata(self, camera_id: str, data: dict[str, Any]) -> None:
        self._send(("metadata", camera_id, data))

    def _send(self, message: tuple[Any, ...]) -> None:
        if self.stop.is_set():
            return
        try:
            self.connection.send(message)
        except (BrokenPipeError, EOFError):  # the HTTP process is gone: nobody to serve, stop quietly
            self.stop.set()


def _make_stream(
    engine: EmbeddedEngine, camera: CameraConfig, width: int, height: int, fps: float
) -> StreamAnonymizer:
    geometry = camera.geometry.to_geometry() if camera.geometry else None
    context = CameraContext(resolve_profile(camera.profile), width, height, fps, geometry, camera.zones())
    return engine.stream(context, name=camera.id)


def worker_main(
    cameras: list[dict[str, Any]], connection: Connection, mux: MuxSettings, hls_root: str | None = None
) -> None:
    """The body of a worker process (spawned: it builds its own engine and sources)."""
    configure_logging("info")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    configs = [CameraConfig.model_validate(c) for c in cameras]
    classes = sorted({c for cfg in configs for c in resolve_profile(cfg.profile).masked_classes})
    engine = EmbeddedEngine(classes=classes)
    ids = AnonymousIds()  # one key per worker run: ids do not survive a restart either
    live = [
        LiveCamera(
            cfg.id,
            LiveSource(cfg.id, SourceSettings(cfg.source, loop=cfg.loop)),
            partial(_make_stream, engine, cfg),
            MetadataBuilder(cfg.id, ids),
        )
        for cfg in configs
    ]
    pipe = _PipeOutput(connection, stop)
    hls = HlsOutputs(Path(hls_root)) if hls_root else None
    try:
        LiveWorker(live, FanOut(pipe, hls) if hls else pipe, mux).run(stop)
    finally:
        if hls is not None:
            hls.close()


@dataclass
class _Worker:
    cameras: list[CameraConfig]
    process: Any = None  # multiprocessing.Process (spawn context)
    restarts: int = 0


class Supervisor:
    """Starts the worker processes, forwards their frames to the outputs, restarts the ones that die."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        outputs: CameraOutputs,
        workers: int = 1,
        mux: MuxSettings | None = None,
        hls_root: Path | None = None,
    ) -> None:
        count = max(1, min(workers, len(cameras)))
        self.workers = [_Worker(cameras[i::count]) for i in range(count)]
        self.outputs = outputs
        self.mux = mux or MuxSettings()
        self.hls_root = str(hls_root) if hls_root is not None else None
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        for worker in self.workers:
            self._spawn(worker)
        self._monitor.start()
        return self

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]

    def _spawn(self, worker: _Worker) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        payload = [c.model_dump(mode="json") for c in worker.cameras]
        process = self._context.Process(
            target=worker_main, args=(payload, sender, self.mux, self.hls_root), daemon=True
        )
        process.start()
        sender.close()  # the child holds the only sending end: its death ends our reads
        worker.process = process
        threading.Thread(target=self._forward, args=(receiver,), daemon=True).start()

    def _forward(self, receiver: Connection) -> None:
        while True:
            try:
                kind, camera_id, *payload = receiver.recv()
            except (EOFError, OSError):
                return
            if kind == "frame":
                self.outputs.publish_encoded(camera_id, *payload)
            else:
                self.outputs.publish_metadata(camera_id, *payload)

    def _watch(self) -> None:
        while not self._stopping.wait(0.25):
            for worker in self.workers:
                if worker.process is not None and not worker.process.is_alive():
                    worker.restarts += 1
                    log.error(
                        "worker_died",
                        exitcode=worker.process.exitcode,
                        cameras=[c.id for c in worker.cameras],
                        restarts=worker.restarts,
                    )
                    time.sleep(RESTART_DELAY_S)
                    if not self._stopping.is_set():
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
