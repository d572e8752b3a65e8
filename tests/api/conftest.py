"""The control plane over its real store: SQLite always, PostgreSQL when the test command started one.
The data plane is replaced by a recorder: these tests are about the API and its services; the e2e tests
run the real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import postgres_database
from fakes import RecordingControl
from fastapi.testclient import TestClient
from model_repository import repository_copy

from orchestrator.control.app import create_app
from orchestrator.dataplane.live.outputs import CameraOutputs
from orchestrator.services.container import Services, open_services
from orchestrator.services.keys import Role
from orchestrator.settings import ServerSettings


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerSettings]:
    # Model uploads and activations change the repository: each test has its own copy.
    models = repository_copy(tmp_path / "models")
    if request.param == "sqlite":
        yield ServerSettings(data_dir=tmp_path / "data", model_repository=models)
    else:
        with postgres_database() as url:
            yield ServerSettings(data_dir=tmp_path / "data", database_url=url, model_repository=models)


@pytest.fixture
def outputs() -> CameraOutputs:
    return CameraOutputs()


@pytest.fixture
def control(outputs: CameraOutputs) -> RecordingControl:
    return RecordingControl(outputs)


@pytest.fixture
def services(settings: ServerSettings, control: RecordingControl) -> Iterator[Services]:
    services = open_services(settings, control)
    yield services
    services.close()


@pytest.fixture
def as_role(services: Services) -> dict[str, dict[str, str]]:
    """Request headers carrying a fresh key of each role: `as_role["auditor"]`."""
    keys = {role.value: services.keys.create(role, label=f"test {role.value}") for role in Role}
    return {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}


@pytest.fixture
def client(services: Services, outputs: CameraOutputs) -> Iterator[TestClient]:
    with TestClient(create_app(services, outputs)) as test_client:
        yield test_client
