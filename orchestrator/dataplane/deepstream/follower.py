"""The DeepStream data plane runs in its own container (the GPU one), beside the orchestrator's API: it
follows the camera registry in the shared database and applies every change to its pipeline through the
same StreamControl protocol the registry drives in-process. A camera registered through the API starts
streaming within one poll; a deleted one stops; a changed camera, or a change to its profile, applies.
"""

from __future__ import annotations

import structlog

from ...services.cameras import CameraRegistry, StreamControl
from ...services.errors import NotFound

log = structlog.get_logger(__name__)

POLL_S = 2.0


class RegistryFollower:
    def __init__(self, registry: CameraRegistry, control: StreamControl) -> None:
        self.registry = registry
        self.control = control
        self._applied: dict[str, str] = {}  # camera id -> what was applied (its row stamp and its profile)

    def sync(self) -> None:
        """One poll: start, update and stop cameras so the pipeline matches the registry."""
        stored = {c.id: c for c in self.registry.all()}
        for camera_id in sorted(set(self._applied) - set(stored)):
            self.control.stop_camera(camera_id)
            del self._applied[camera_id]
        for camera_id, row in stored.items():
            try:
                camera = self.registry.full_config(camera_id)
                profile = self.registry.profiles.get(camera.profile)
            except NotFound as exc:  # deleted meanwhile, or its profile: the next poll sees it
                log.warning("registry_camera_skipped", camera=camera_id, error=str(exc))
                continue
            stamp = f"{row.updated_at}|{profile.model_dump_json()}"
            if self._applied.get(camera_id) == stamp:
                continue
            try:
                if camera_id in self._applied:
                    self.control.update_camera(camera, profile)
                else:
                    self.control.start_camera(camera, profile)
            except Exception as exc:  # one camera that cannot join must not keep the others out; retried
                log.error("registry_camera_not_applied", camera=camera_id, error=repr(exc))
                continue
            self._applied[camera_id] = stamp
