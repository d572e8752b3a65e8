"""Camera registration (roles integrator and admin): registering starts the stream, deleting stops it,
changes to profile or zones apply live."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from ...core.camera_settings import CameraConfig
from ...services.cameras import StoredCamera
from ...services.container import Services
from ...services.keys import Principal, Role
from ..auth import requires
from ..schemas import CameraId, CameraLinks, CameraOut


@dataclass(frozen=True)
class RtspOutput:
    port: int | None  # None: this server has no RTSP output
    unavailable: str | None = None


def camera_routes(services: Services, rtsp: RtspOutput) -> APIRouter:
    router = APIRouter(prefix="/v1/cameras", tags=["cameras"])
    Integrator = Annotated[Principal, Depends(requires(services.keys, Role.INTEGRATOR))]

    def links(request: Request, camera_id: str) -> CameraLinks:
        base = f"{str(request.base_url).rstrip('/')}/v1/cameras/{camera_id}"
        host = request.url.hostname or "127.0.0.1"
        return CameraLinks(
            rtsp=f"rtsp://{host}:{rtsp.port}/{camera_id}" if rtsp.port else None,
            rtsp_unavailable=rtsp.unavailable,
            hls=f"{base}/hls/index.m3u8",
            mjpeg=f"{base}/stream.mjpeg",
            snapshot=f"{base}/snapshot.jpg",
            metadata=f"{base}/metadata",
        )

    def out(request: Request, stored: StoredCamera) -> CameraOut:
        return CameraOut.model_validate(
            {
                **stored.config,
                "created_at": stored.created_at,
                "updated_at": stored.updated_at,
                "outputs": links(request, stored.id),
            }
        )

    @router.post("", status_code=201)
    def register(camera: CameraConfig, request: Request, who: Integrator) -> CameraOut:
        return out(request, services.cameras.create(camera, who.actor))

    @router.get("")
    def list_cameras(request: Request, who: Integrator) -> list[CameraOut]:
        return [out(request, c) for c in services.cameras.all()]

    @router.get("/{camera_id}")
    def get_camera(camera_id: CameraId, request: Request, who: Integrator) -> CameraOut:
        return out(request, services.cameras.get(camera_id))

    @router.patch("/{camera_id}")
    def change_camera(
        camera_id: CameraId,
        changes: Annotated[dict[str, Any], Body(description="the fields to change, as in a camera entry")],
        request: Request,
        who: Integrator,
    ) -> CameraOut:
        return out(request, services.cameras.update(camera_id, changes, who.actor))

    @router.delete("/{camera_id}", status_code=204, response_class=Response)
    def delete_camera(camera_id: CameraId, who: Integrator) -> Response:
        services.cameras.delete(camera_id, who.actor)
        return Response(status_code=204)

    @router.get("/{camera_id}/status")
    def camera_status(camera_id: CameraId, who: Integrator) -> dict[str, Any]:
        services.cameras.get(camera_id)  # 404 for an unknown camera
        status = services.monitor.status(camera_id)
        return {"id": camera_id, **(status or {"state": "starting"})}

    return router
