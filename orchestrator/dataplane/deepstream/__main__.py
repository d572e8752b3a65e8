"""`python -m orchestrator.dataplane.deepstream`: the GPU data plane (the `dataplane` service of
docker-compose.gpu.yml). It checks deepstream_configs/ against the model repository, builds the pipeline,
and follows the camera registry in the shared database until SIGTERM.

Settings come from the orchestrator's environment (CITYVEIL_DATABASE_URL, CITYVEIL_SECRET_KEY: the same
values, so it can read the cameras' sealed sources) plus CITYVEIL_DEEPSTREAM_CONFIGS. Exit status 2 with one
sentence when the configuration or the environment is wrong.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import structlog
from pydantic import ValidationError

from ...core.config_files import ConfigError
from ...inference.repository import ModelRepository, RepositoryError
from ...logging_setup import configure_logging
from ...services.container import open_services
from ...settings import ServerSettings
from .config import load_deepstream_config
from .follower import POLL_S, RegistryFollower
from .gst import DeepStreamUnavailable, load_modules
from .pipeline import DeepStreamPipeline, ensemble_detectors

log = structlog.get_logger(__name__)


def main() -> int:
    configure_logging("info")
    try:
        settings = ServerSettings()
        repository = ModelRepository(settings.model_repository)
        configs = Path(os.environ.get("CITYVEIL_DEEPSTREAM_CONFIGS", "deepstream_configs"))
        config = load_deepstream_config(configs, repository.root)
        modules = load_modules()
    except (ConfigError, RepositoryError, DeepStreamUnavailable, ValidationError) as exc:
        print(f"cityveil dataplane: {exc}", file=sys.stderr)
        return 2
    detectors = ensemble_detectors(repository, config.settings.inference.model)
    pipeline = DeepStreamPipeline(config, modules, detectors, summary_interval_s=settings.summary_interval_s)
    services = open_services(settings, pipeline)
    pipeline.report = services.monitor.report
    follower = RegistryFollower(services.cameras, pipeline)
    loop = modules.GLib.MainLoop()

    def poll() -> bool:
        try:
            follower.sync()
            pipeline.report_summaries()
        except Exception as exc:  # the database may be restarting: streams go on, the next poll retries
            log.error("registry_poll_failed", error=repr(exc))
        return True  # keep the timer

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.quit())
    pipeline.start()
    poll()
    modules.GLib.timeout_add(int(POLL_S * 1000), poll)
    try:
        loop.run()
    finally:
        pipeline.stop()
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
