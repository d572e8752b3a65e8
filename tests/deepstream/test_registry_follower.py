"""The GPU data plane follows the camera registry in the shared database (SQLite here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import RecordingControl

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.profiles import Profile
from orchestrator.dataplane.deepstream.api import FollowedByDataplane
from orchestrator.dataplane.deepstream.follower import RegistryFollower
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.services.container import Services, open_services
from orchestrator.settings import ServerSettings


class FlakyControl(RecordingControl):
    """The pipeline's side: records what the follower applies; refuses camera ids in `refuse`."""

    def __init__(self) -> None:
        super().__init__(CameraOutputs())
        self.refuse: set[str] = set()

    def start_camera(self, camera: CameraConfig, profile: Profile) -> None:
        if camera.id in self.refuse:
            raise RuntimeError("no free source slot")
        super().start_camera(camera, profile)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = open_services(ServerSettings(data_dir=tmp_path / "data"), FollowedByDataplane())
    yield services
    services.close()


def test_registrations_changes_and_deletions_reach_the_pipeline(services: Services) -> None:
    pipeline = FlakyControl()
    follower = RegistryFollower(services.cameras, pipeline)
    services.cameras.create(CameraConfig(id="gate", source="rtsp://user:pw@10.0.0.9/s1"), actor="test")

    follower.sync()
    follower.sync()  # nothing changed: nothing applied again
    assert pipeline.calls == [("start", "gate", "public_space")]
    assert pipeline.sources["gate"] == "rtsp://user:pw@10.0.0.9/s1"  # the real source, unsealed

    services.cameras.update("gate", {"profile": "traffic"}, actor="test")
    follower.sync()
    services.cameras.delete("gate", actor="test")
    follower.sync()
    assert pipeline.calls[1:] == [("update", "gate", "traffic"), ("stop", "gate", None)]


def test_a_camera_the_pipeline_refuses_is_retried_and_the_others_go_on(services: Services) -> None:
    pipeline = FlakyControl()
    pipeline.refuse.add("a")
    follower = RegistryFollower(services.cameras, pipeline)
    for camera_id in ("a", "b"):
        services.cameras.create(CameraConfig(id=camera_id, source="rtsp://10.0.0.1/s"), actor="test")

    follower.sync()
    assert pipeline.calls == [("start", "b", "public_space")]

    pipeline.refuse.clear()
    follower.sync()
    assert pipeline.calls[-1] == ("start", "a", "public_space")
