"""The audit log and the compliance reports (roles auditor and admin)."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ...services.clock import format_time
from ...services.container import Services
from ...services.keys import Principal, Role
from ...services.reports import report_html
from ..auth import requires
from ..schemas import AuditPage, CameraId, FilterText, VerificationOut

MAX_SEQ = 2**63 - 1  # the audit log's BIGINT sequence


def audit_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["audit"])
    Auditor = Annotated[Principal, Depends(requires(services.keys, Role.AUDITOR))]

    @router.get("/v1/audit")
    def audit_entries(
        who: Auditor,
        camera_id: FilterText = None,
        action: FilterText = None,
        actor: FilterText = None,
        since: Annotated[datetime | None, Query(alias="from")] = None,
        until: Annotated[datetime | None, Query(alias="to")] = None,
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        with services.db.read() as session:
            entries = services.audit.query(
                session,
                camera_id=camera_id,
                action=action,
                actor=actor,
                since=format_time(since) if since else None,
                until=format_time(until) if until else None,
                after_seq=after_seq,
                limit=limit,
            )
        return AuditPage(
            entries=entries, next_after_seq=entries[-1]["seq"] if len(entries) == limit else None
        )

    @router.get("/v1/audit/verify")
    def verify(who: Auditor) -> VerificationOut:
        with services.db.read() as session:
            result = services.audit.verify(session)
        return VerificationOut(
            ok=result.ok, entries=result.entries, first_bad_seq=result.first_bad_seq, reason=result.reason
        )

    @router.get(
        "/v1/reports/cameras/{camera_id}",
        response_class=JSONResponse,
        responses={200: {"content": {"text/html": {}}}},
    )
    def camera_report(
        camera_id: CameraId,
        who: Auditor,
        since: Annotated[datetime | None, Query(alias="from")] = None,
        until: Annotated[datetime | None, Query(alias="to")] = None,
        format: Literal["json", "html"] = "json",
    ) -> Response:
        """Processing report over a window (default: the last 24 hours)."""
        end = until or datetime.now(timezone.utc)
        start = since or end - timedelta(days=1)
        report = services.reports.camera_report(camera_id, format_time(start), format_time(end))
        with services.db.write() as session:
            services.audit.append(
                session,
                who.actor,
                "report_generated",
                {"from": report["from"], "to": report["to"]},
                camera_id,
            )
        return HTMLResponse(report_html(report)) if format == "html" else JSONResponse(report)

    return router
