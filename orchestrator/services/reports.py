"""Compliance reports per camera over a time window, built from the audit log's processing summaries
and stream events: the material of a DPIA and an accountability file."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from ..core.policy import ParameterRanges, widen_ranges
from ..storage.database import Database
from .audit import AuditLog
from .errors import Invalid

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
)
STREAM_EVENTS = ("stream_started", "stream_stopped", "stream_live", "stream_failed", "stream_reconfigured")


class ReportService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def camera_report(self, camera_id: str, since: str, until: str) -> dict[str, Any]:
        if since >= until:
            raise Invalid("'from' must be before 'to'")
        with self.db.read() as session:
            entries = list(self.audit.entries(session, camera_id=camera_id, since=since, until=until))
        frames, analysed, failed, dropped, frames_in, live_s, covered_s = 0, 0, 0, 0, 0, 0.0, 0.0
        detections: Counter[str] = Counter()
        masks: Counter[str] = Counter()
        parameters: ParameterRanges = {}
        profiles: set[str] = set()
        models: dict[str, set[str]] = {}
        events: Counter[str] = Counter()
        changes = []
        for entry in entries:
            details, action = entry["details"], entry["action"]
            if action == "processing_summary":
                frames += details.get("frames", 0)
                analysed += details.get("analysed_frames", 0)
                failed += details.get("failed_frames", 0)
                dropped += details.get("dropped_frames", 0)
                frames_in += details.get("frames_in", 0)
                live_s += details.get("live_s", 0.0)
                covered_s += details.get("interval_s", 0.0)
                detections.update(details.get("detections", {}))
                masks.update(details.get("masks", {}))
                widen_ranges(parameters, details.get("parameter_ranges", {}))
                if details.get("profile"):
                    profiles.add(details["profile"])
                for name, label in details.get("models", {}).items():
                    models.setdefault(name, set()).add(label)
            elif action in STREAM_EVENTS or action == "fail_closed":
                events[action] += 1
            elif action.startswith("camera_"):
                changes.append({"at": entry["at"], "action": action, "actor": entry["actor"]})
        return {
            "camera_id": camera_id,
            "from": since,
            "to": until,
            "frames_processed": frames,
            "frames_analysed": analysed,
            "frames_received": frames_in,
            "fail_closed_frames": failed,
            "frames_dropped": dropped,
            "detections": dict(detections),
            "masks": dict(masks),
            "detections_per_analysed_frame": {k: round(v / analysed, 4) for k, v in detections.items()}
            if analysed
            else {},
            "parameter_ranges": parameters,
            "profiles": sorted(profiles),
            "model_versions": {k: sorted(v) for k, v in models.items()},
            "uptime_s": round(live_s, 1),
            "reported_s": round(covered_s, 1),
            "uptime_ratio": round(live_s / covered_s, 4) if covered_s else None,
            "stream_events": dict(events),
            "configuration_changes": changes,
            "summaries": sum(1 for e in entries if e["action"] == "processing_summary"),
        }


def report_html(report: dict[str, Any]) -> str:
    """The same report as a page a data protection officer can read and print."""

    def row(name: str, value: Any) -> str:
        return f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"

    def table(title: str, data: dict[str, Any]) -> str:
        rows = "".join(row(k, v) for k, v in data.items()) or row("none", "")
        return f"<h2>{html.escape(title)}</h2><table>{rows}</table>"

    overview = {
        k: report[k]
        for k in (
            "from",
            "to",
            "frames_received",
            "frames_processed",
            "frames_analysed",
            "fail_closed_frames",
            "frames_dropped",
            "uptime_s",
            "reported_s",
            "uptime_ratio",
        )
    }
    parameters = {
        f"{cls} {name}": f"{low:g} .. {high:g}"
        for cls, values in report["parameter_ranges"].items()
        for name, (low, high) in values.items()
    }
    versions = {k: ", ".join(v) for k, v in report["model_versions"].items()}
    changes = {f"{c['at']} {c['action']}": c["actor"] for c in report["configuration_changes"]}
    title = f"CityVeil processing report: camera {report['camera_id']}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        + table("Overview", overview)
        + table("Detections per class", report["detections"])
        + table("Detections per analysed frame", report["detections_per_analysed_frame"])
        + table("Masks per class", report["masks"])
        + table("Parameters applied (lowest .. highest)", parameters)
        + table("Profiles", {p: "" for p in report["profiles"]})
        + table("Model versions", versions)
        + table("Stream events", report["stream_events"])
        + table("Configuration changes", changes)
        + "</body></html>"
    )
