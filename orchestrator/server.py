"""`cityveil serve`: the orchestrator process. It opens the store, starts the worker processes, the RTSP
server (when GStreamer is installed) and the HTTP app, seeds cameras from cameras.yaml, and on SIGTERM
stops the workers (outputs finalised) before it exits."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from .control.app import create_app
from .control.routes.cameras import RtspOutput
from .core.camera_settings import load_cameras_file
from .dataplane.live.outputs import CameraOutputs
from .dataplane.live.processes import Supervisor
from .dataplane.live.rtsp import RtspServer, rtsp_unavailable_reason
from .inference.triton_options import parse_inference
from .services.container import Services, open_services
from .settings import ServerSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    rtsp_port: int = 8554  # 0: no RTSP output
    workers: int = 1
    cameras_file: Path | None = None


def _audit_rtsp_play(services: Services, camera_id: str, client: str) -> None:
    """RTSP has no API key: the client's address stands in for the actor of the access."""
    with services.db.write() as session:
        services.audit.append(session, f"rtsp:{client}", "output_accessed", {"output": "rtsp"}, camera_id)


def run_server(settings: ServerSettings, options: ServeOptions) -> None:
    seed = load_cameras_file(options.cameras_file).cameras if options.cameras_file else []
    outputs = CameraOutputs()
    hls_root = settings.data_dir / "hls"
    rtsp_server: RtspServer | None = None
    unavailable = rtsp_unavailable_reason() if options.rtsp_port else "disabled (--rtsp-port 0)"
    if unavailable is None:
        rtsp_server = RtspServer(outputs, host=options.host, port=options.rtsp_port)
    else:
        log.warning("rtsp_unavailable", reason=unavailable)
    camera_outputs: list[Any] = [rtsp_server] if rtsp_server else []
    supervisor = Supervisor(
        outputs,
        workers=options.workers,
        hls_root=hls_root,
        summary_interval_s=settings.summary_interval_s,
        camera_outputs=camera_outputs,
        triton=parse_inference(settings.inference),
    )
    services = open_services(settings, supervisor)
    supervisor.report = services.monitor.report
    if rtsp_server is not None:
        rtsp_server.on_play = partial(_audit_rtsp_play, services)
    supervisor.start()
    services.cameras.start_all()
    services.cameras.seed(seed)
    app = create_app(
        services,
        outputs,
        hls_root,
        RtspOutput(options.rtsp_port if rtsp_server else None, unavailable),
        dataplane_ready=supervisor.alive,
    )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it found:
    # this one, so that the workers are stopped below and the exit status says "stopped cleanly".
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(
            app, host=options.host, port=options.port, log_level="warning", timeout_graceful_shutdown=2
        )
    finally:
        supervisor.stop()
        if rtsp_server is not None:
            rtsp_server.close()
        services.close()
