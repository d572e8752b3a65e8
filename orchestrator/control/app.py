"""The FastAPI app factory: routes validate, call a service and return a schema; no state at import."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..dataplane.live.outputs import CameraOutputs
from ..services.container import Services
from ..services.errors import Conflict, Invalid, NotFound, ServiceError
from ..services.keys import Principal, Role
from .auth import requires
from .metrics import metrics_registry
from .routes.audit import audit_routes
from .routes.cameras import RtspOutput, camera_routes
from .routes.models import model_routes
from .routes.outputs import output_routes
from .routes.profiles import profile_routes
from .schemas import ERRORS

STATUS_OF = {NotFound: 404, Conflict: 409}


def create_app(
    services: Services,
    outputs: CameraOutputs,
    hls_root: Path | None = None,
    rtsp: RtspOutput | None = None,
    dataplane_ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(
        title="CityVeil",
        summary="Camera registry, masked outputs, audit log and compliance reports",
        version="1",
    )

    @app.exception_handler(ServiceError)
    def refused(request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, Invalid):  # the same shape as FastAPI's own validation errors
            problem = {"type": "value_error", "loc": ["body"], "msg": str(exc)}
            return JSONResponse({"detail": [problem]}, status_code=422)
        return JSONResponse({"detail": str(exc)}, status_code=STATUS_OF.get(type(exc), 400))

    @app.get("/healthz", tags=["operations"])
    def health() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "not ready; the failing checks are false"}},
    )
    def ready() -> JSONResponse:
        """The database answers and the worker processes run."""
        checks = {"database": services.database_ok(), "dataplane": dataplane_ready()}
        return JSONResponse(
            {"ready": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503
        )

    registry = metrics_registry(services.monitor)
    Scraper = Annotated[Principal, Depends(requires(services.keys, Role.AUDITOR, Role.ML_ENGINEER))]

    @app.get("/metrics", tags=["operations"], response_class=Response, responses=ERRORS)
    def metrics(who: Scraper) -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routers = [
        camera_routes(services, rtsp or RtspOutput(port=None, unavailable="not configured")),
        output_routes(services, outputs, hls_root),
        profile_routes(services),
        audit_routes(services),
        model_routes(services),
    ]
    for router in routers:
        app.include_router(router, responses=ERRORS)
    return app
