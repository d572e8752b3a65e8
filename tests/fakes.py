"""Test doubles shared by the test folders (never imported by the package)."""

from __future__ import annotations

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.profiles import Profile
from orchestrator.dataplane.live.outputs import CameraOutputs


class RecordingControl:
    """Stands in for the worker supervisor: remembers what the registry asked of the data plane."""

    def __init__(self, outputs: CameraOutputs) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, str, str | None]] = []  # (action, camera id, profile name)
        self.sources: dict[str, str] = {}

    def start_camera(self, camera: CameraConfig, profile: Profile) -> None:
        self.calls.append(("start", camera.id, profile.name))
        self.sources[camera.id] = camera.source
        self.outputs.register(camera.id)

    def update_camera(self, camera: CameraConfig, profile: Profile) -> None:
        self.calls.append(("update", camera.id, profile.name))
        self.sources[camera.id] = camera.source

    def stop_camera(self, camera_id: str) -> None:
        self.calls.append(("stop", camera_id, None))
        self.outputs.unregister(camera_id)

    def reload_models(self) -> None:
        self.calls.append(("reload_models", "", None))
