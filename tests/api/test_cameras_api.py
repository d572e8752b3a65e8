"""Camera registration over REST: validation, credentials, the data plane told, every change audited."""

from __future__ import annotations

import pytest
from fakes import RecordingControl
from fastapi.testclient import TestClient

from orchestrator.services.container import Services

DOOR = {
    "id": "door",
    "source": "rtsp://admin:s3cret@10.0.0.7:554/stream1?token=abc123",
    "name": "Front door",
    "location": "Rue Haute 12",
    "zone": "residential",
    "geometry": {"height_m": 4.0, "tilt_deg": 20.0, "hfov_deg": 90.0},
    "privacy_zones": [[[0.0, 0.0], [0.2, 0.0], [0.2, 0.3]]],
}


def register(client: TestClient, headers: dict[str, str], **changes: object) -> dict:
    response = client.post("/v1/cameras", json={**DOOR, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_register_list_get_change_delete(
    client: TestClient, as_role: dict, control: RecordingControl, services: Services
) -> None:
    integrator = as_role["integrator"]
    body = register(client, integrator)
    assert body["profile"] == "residential", "the zone picks the default profile"
    assert body["outputs"]["hls"].endswith("/v1/cameras/door/hls/index.m3u8")
    assert body["outputs"]["rtsp"] is None and body["outputs"]["rtsp_unavailable"]
    assert [c["id"] for c in client.get("/v1/cameras", headers=integrator).json()] == ["door"]
    assert client.get("/v1/cameras/door", headers=integrator).json()["name"] == "Front door"

    changed = client.patch(
        "/v1/cameras/door", json={"profile": "public_space", "privacy_zones": []}, headers=integrator
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["profile"] == "public_space" and changed.json()["privacy_zones"] == []
    assert client.delete("/v1/cameras/door", headers=integrator).status_code == 204
    assert client.get("/v1/cameras/door", headers=integrator).status_code == 404
    assert control.calls == [
        ("start", "door", "residential"),
        ("update", "door", "public_space"),
        ("stop", "door", None),
    ]
    with services.db.read() as session:
        actions = [e["action"] for e in services.audit.query(session, camera_id="door")]
    assert actions == ["camera_created", "camera_updated", "camera_deleted"]


def test_credentials_are_encrypted_at_rest_and_never_returned(
    client: TestClient, as_role: dict, control: RecordingControl, services: Services
) -> None:
    integrator = as_role["integrator"]
    body = register(client, integrator)
    assert body["source"] == "rtsp://***@10.0.0.7:554/stream1?token=***"
    assert control.sources["door"] == DOOR["source"], "the data plane gets the real URL"
    # The redacted URL sent back unchanged keeps the stored secret one.
    client.patch("/v1/cameras/door", json={"source": body["source"], "name": "Door"}, headers=integrator)
    assert control.sources["door"] == DOOR["source"]
    with services.db.read() as session:
        for table in ("cameras", "audit_log"):
            dump = str(session.execute(__import__("sqlalchemy").text(f"SELECT * FROM {table}")).all())
            assert "s3cret" not in dump and "abc123" not in dump, table
    refused = client.patch("/v1/cameras/door", json={"source": "rtsp://***@10.0.0.8/x"}, headers=integrator)
    assert refused.status_code == 422 and "in full" in refused.text


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"source": "ftp://10.0.0.7/x"}, "source must be one of"),
        ({"geometry": {"height_m": -3, "tilt_deg": 20, "hfov_deg": 90}}, "greater than 0"),
        ({"privacy_zones": [[[0, 0], [1, 1]]]}, "3 to 256 points"),
        ({"privacy_zones": [[[0, 0], [0.5, 0], [0.5, 0.5]] * 100]}, "3 to 256 points"),
        ({"privacy_zones": [[[0, 0], [2, 0], [0, 1]]]}, "outside 0..1"),
        ({"count_zones": {"bad name!": [[0, 0], [1, 0], [1, 1]]}}, "count zone name"),
        ({"count_zones": {"lane": [[0, 0], [1, 0]]}}, "3 to 256 points"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"id": "bad id!"}, "should match pattern"),
        ({"profile": "/etc/passwd.yaml"}, "unknown profile"),
        ({"profile": "nonexistent"}, "unknown profile"),
    ],
)
def test_bad_cameras_are_refused_with_a_reason(
    client: TestClient, as_role: dict, control: RecordingControl, changes: dict, reason: str
) -> None:
    response = client.post("/v1/cameras", json={**DOOR, **changes}, headers=as_role["integrator"])
    assert response.status_code == 422
    assert reason in response.text
    assert control.calls == [], "nothing reaches the data plane"
    assert client.get("/v1/cameras", headers=as_role["integrator"]).json() == []


def test_duplicates_and_unknown_cameras(client: TestClient, as_role: dict) -> None:
    integrator = as_role["integrator"]
    register(client, integrator)
    again = client.post("/v1/cameras", json=DOOR, headers=integrator)
    assert (
        again.status_code == 409
        and "already" not in again.json()["detail"]
        and "PATCH" in again.json()["detail"]
    )
    assert client.patch("/v1/cameras/nope", json={"name": "x"}, headers=integrator).status_code == 404
    assert client.delete("/v1/cameras/nope", headers=integrator).status_code == 404
    renamed = client.patch("/v1/cameras/door", json={"id": "other"}, headers=integrator)
    assert renamed.status_code == 409


def test_custom_profiles_apply_to_running_cameras(
    client: TestClient, as_role: dict, control: RecordingControl
) -> None:
    integrator = as_role["integrator"]
    builtin = client.get("/v1/profiles/residential", headers=integrator).json()
    assert builtin["builtin"] is True
    custom = {**builtin, "name": "school", "holdover_s": 2.0}
    del custom["builtin"], custom["zone"]
    created = client.post("/v1/profiles", json=custom, headers=integrator)
    assert created.status_code == 201, created.text
    assert created.json()["zone"] == "custom"
    register(client, integrator, profile="school")
    changed = client.patch("/v1/profiles/school", json={"holdover_s": 3.0}, headers=integrator)
    assert changed.status_code == 200 and changed.json()["holdover_s"] == 3.0
    assert control.calls[-1] == ("update", "door", "school"), "the running camera gets the new profile"
    assert (
        client.patch("/v1/profiles/residential", json={"holdover_s": 0}, headers=integrator).status_code
        == 409
    )
    bad = client.post("/v1/profiles", json={**custom, "name": "loose", "holdover_s": 99}, headers=integrator)
    assert bad.status_code == 422 and "holdover_s" in bad.text
    assert client.post("/v1/profiles", json=custom, headers=integrator).status_code == 409


def test_status_before_the_data_plane_reports(client: TestClient, as_role: dict, services: Services) -> None:
    register(client, as_role["integrator"])
    assert client.get("/v1/cameras/door/status", headers=as_role["integrator"]).json()["state"] == "starting"
    services.monitor.report("status", "door", {"state": "live", "frames_out": 12})
    status = client.get("/v1/cameras/door/status", headers=as_role["integrator"]).json()
    assert (status["state"], status["frames_out"]) == ("live", 12)
