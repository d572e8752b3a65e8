"""Reports for data protection officers and Prometheus metrics, from the data plane's telemetry."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orchestrator.services.container import Services

SUMMARY = {
    "frames": 900,
    "analysed_frames": 450,
    "failed_frames": 3,
    "dropped_frames": 0,
    "detections": {"face": 90},
    "masks": {"face": 180},
    "parameter_ranges": {"face": {"threshold": [0.3, 0.4], "margin": [0.2, 0.25]}},
    "interval_s": 60.0,
    "live_s": 57.0,
    "frames_in": 905,
    "frames_dropped_overload": 5,
    "profile": "public_space",
    "models": {"face": "face_centerface v1 int8"},
}


def test_report_sums_summaries_and_names_parameters_and_models(
    client: TestClient, services: Services, as_role: dict
) -> None:
    monitor = services.monitor
    monitor.report("event", "door", {"action": "stream_started", "profile": "public_space"})
    monitor.report("summary", "door", SUMMARY)
    later = {
        **SUMMARY,
        "parameter_ranges": {"face": {"threshold": [0.25, 0.3]}},
        "models": {"face": "face_centerface v2 int8"},
    }
    monitor.report("summary", "door", later)
    monitor.report("event", "door", {"action": "fail_closed", "frames": 3, "handled_as": "mask_whole"})
    monitor.report("summary", "other", SUMMARY)  # another camera: not in this report
    report = client.get("/v1/reports/cameras/door", headers=as_role["auditor"]).json()
    assert report["frames_processed"] == 1800 and report["fail_closed_frames"] == 6
    assert report["detections"] == {"face": 180} and report["masks"] == {"face": 360}
    assert report["detections_per_analysed_frame"] == {"face": 0.2}
    assert report["parameter_ranges"]["face"]["threshold"] == [0.25, 0.4]
    assert report["model_versions"] == {"face": ["face_centerface v1 int8", "face_centerface v2 int8"]}
    assert report["uptime_ratio"] == 0.95
    assert report["stream_events"] == {"stream_started": 1, "fail_closed": 1}
    page = client.get("/v1/reports/cameras/door", params={"format": "html"}, headers=as_role["auditor"])
    assert page.headers["content-type"].startswith("text/html")
    assert "face_centerface v2 int8" in page.text and "0.25 .. 0.4" in page.text
    with services.db.read() as session:
        assert services.audit.query(session, action="report_generated")[0]["camera_id"] == "door"


def test_report_windows(client: TestClient, services: Services, as_role: dict) -> None:
    services.monitor.report("summary", "door", SUMMARY)
    old = client.get(
        "/v1/reports/cameras/door",
        params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"},
        headers=as_role["auditor"],
    ).json()
    assert old["frames_processed"] == 0 and old["summaries"] == 0
    backwards = client.get(
        "/v1/reports/cameras/door",
        params={"from": "2021-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"},
        headers=as_role["auditor"],
    )
    assert backwards.status_code == 422 and "before" in backwards.text


def test_metrics_show_the_latest_status(client: TestClient, services: Services, as_role: dict) -> None:
    services.monitor.report(
        "status",
        "door",
        {
            "state": "live",
            "frames_in": 100,
            "frames_out": 98,
            "frames_dropped": 2,
            "frames_failed": 1,
            "latency_p95_s": 0.12,
            "detections": {"face": 40},
            "masks": {"face": 80},
            "models": {"face": "face_centerface v1 int8"},
            "detect_interval": 3,
        },
    )
    body = client.get("/metrics", headers=as_role["auditor"]).text
    for line in (
        'cityveil_streams{state="live"} 1.0',
        'cityveil_frames_out_total{camera="door"} 98.0',
        'cityveil_frames_failed_total{camera="door"} 1.0',
        'cityveil_masks_total{camera="door",cls="face"} 80.0',
        'cityveil_latency_p95_seconds{camera="door"} 0.12',
        'cityveil_detect_interval{camera="door"} 3.0',
        'cityveil_model_info{camera="door",model="face=face_centerface v1 int8"} 1.0',
    ):
        assert line in body, line
