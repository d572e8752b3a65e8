"""`python -m orchestrator.dataplane.deepstream.api`: the orchestrator's HTTP API in a GPU deployment (the
`orchestrator` service of docker-compose.gpu.yml), without worker processes of its own.

The registry is the shared database: the `dataplane` container follows it (`follower.py`), so this API
stores, audits and serves; the masked video leaves the dataplane over RTSP. Settings are the
orchestrator's (CITYVEIL_DATABASE_URL, CITYVEIL_SECRET_KEY...), plus CITYVEIL_RTSP_PORT (the dataplane's
RTSP port, which camera links point to) and CITYVEIL_PORT (8080).
"""

from __future__ import annotations

import os
import sys

import uvicorn
from pydantic import ValidationError

from ...control.app import create_app
from ...control.routes.cameras import RtspOutput
from ...core.camera_settings import CameraConfig
from ...core.profiles import Profile
from ...dataplane.live.outputs import CameraOutputs
from ...logging_setup import configure_logging
from ...services.container import open_services
from ...settings import ServerSettings


class FollowedByDataplane:
    """The registry's StreamControl when the data plane is another container that follows the database:
    a change is stored (and audited) by the registry, and that is all the data plane needs."""

    def start_camera(self, camera: CameraConfig, profile: Profile) -> None:
        """The dataplane picks the new camera up at its next poll."""

    def update_camera(self, camera: CameraConfig, profile: Profile) -> None:
        """The dataplane sees the changed row at its next poll."""

    def stop_camera(self, camera_id: str) -> None:
        """The dataplane sees the row gone at its next poll."""


def main() -> int:
    configure_logging("info")
    try:
        settings = ServerSettings()
    except ValidationError as exc:
        print(f"cityveil api: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    services = open_services(settings, FollowedByDataplane())
    rtsp = RtspOutput(int(os.environ.get("CITYVEIL_RTSP_PORT", "8554")))
    app = create_app(services, CameraOutputs(), rtsp=rtsp)
    try:
        uvicorn.run(
            app, host="0.0.0.0", port=int(os.environ.get("CITYVEIL_PORT", "8080")), log_level="warning"
        )
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
