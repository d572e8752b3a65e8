"""The data plane's telemetry arriving in the control plane: audit entries for stream events and
processing summaries, and the latest status of each camera for `/status` and `/metrics`."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from ..storage.database import Database
from .audit import AuditLog

log = structlog.get_logger(__name__)

DATAPLANE_ACTOR = "dataplane"


class StreamMonitor:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit
        self._status: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, camera_id: str, data: dict[str, Any]) -> None:
        """Called by the supervisor for every telemetry message of a worker."""
        if kind == "status":
            with self._lock:
                self._status[camera_id] = {**data, "reported_at": time.time()}
            return
        action = "processing_summary" if kind == "summary" else str(data.get("action", kind))
        details = {k: v for k, v in data.items() if k != "action"}
        log.info(action, camera=camera_id, **{k: v for k, v in details.items() if k in ("error", "frames")})
        with self.db.write() as session:
            self.audit.append(session, DATAPLANE_ACTOR, action, details, camera_id)
        if action == "stream_stopped":
            with self._lock:
                self._status.pop(camera_id, None)

    def status(self, camera_id: str) -> dict[str, Any] | None:
        with self._lock:
            status = self._status.get(camera_id)
            return dict(status) if status else None

    def all_status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._status.items()}
