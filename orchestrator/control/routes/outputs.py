"""Masked outputs a VMS pulls (role viewer): snapshot, MJPEG, HLS, metadata feed. Every access is audited."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, Response, StreamingResponse

from ...dataplane.live.hls import PLAYLIST, servable
from ...dataplane.live.outputs import MJPEG_BOUNDARY, CameraOutputs, EncodedFrame, mjpeg_parts, sse_events
from ...services.container import Services
from ...services.keys import Principal, Role
from ..auth import requires
from ..schemas import CameraId, Problem

NO_STORE = {"Cache-Control": "no-store"}
RETRY = {"Retry-After": "2"}


def output_routes(services: Services, outputs: CameraOutputs, hls_root: Path | None) -> APIRouter:
    router = APIRouter(prefix="/v1/cameras/{camera_id}", tags=["outputs"])
    Viewer = Annotated[Principal, Depends(requires(services.keys, Role.VIEWER))]

    def opened(camera_id: str, who: Principal, output: str, name: str | None = None) -> None:
        if camera_id not in outputs.cameras():
            raise HTTPException(404, f"no camera {camera_id!r}")
        details = {"output": output} if name is None else {"output": output, "file": name}
        with services.db.write() as session:
            services.audit.append(session, who.actor, "output_accessed", details, camera_id)

    @router.get(
        "/snapshot.jpg",
        response_class=Response,
        responses={
            200: {"content": {"image/jpeg": {}}},
            503: {"model": Problem, "description": "no frame yet"},
        },
    )
    def snapshot(camera_id: CameraId, who: Viewer) -> Response:
        opened(camera_id, who, "snapshot")
        frame: EncodedFrame | None = outputs.snapshot(camera_id)
        if frame is None:
            raise HTTPException(503, f"camera {camera_id!r} has no masked frame yet")
        return Response(frame.jpeg, media_type="image/jpeg", headers=NO_STORE)

    @router.get("/stream.mjpeg", response_class=StreamingResponse)
    def mjpeg(camera_id: CameraId, who: Viewer) -> StreamingResponse:
        opened(camera_id, who, "mjpeg")
        return StreamingResponse(
            mjpeg_parts(outputs.follow(camera_id)),
            media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            headers=NO_STORE,
        )

    @router.get(
        "/hls/{name}",
        response_class=FileResponse,
        responses={
            200: {"content": {"application/vnd.apple.mpegurl": {}, "video/mp2t": {}}},
            503: {"model": Problem, "description": "the rendition is starting (it runs while requested)"},
        },
    )
    def hls(camera_id: CameraId, name: str, who: Viewer) -> FileResponse:
        """The live HLS playlist (`index.m3u8`) and its segments."""
        opened(camera_id, who, "hls", name)
        outputs.hls_requested(camera_id)  # the rendition runs while it is being requested
        path = hls_root / camera_id / name if hls_root is not None and servable(name) else None
        if path is not None and name == PLAYLIST and not path.is_file():
            raise HTTPException(
                503, f"the HLS rendition of camera {camera_id!r} is starting; retry in a few seconds", RETRY
            )
        if path is None or not path.is_file():
            raise HTTPException(404, f"no HLS file {name!r} for camera {camera_id!r}")
        kind = "application/vnd.apple.mpegurl" if name == PLAYLIST else "video/mp2t"
        return FileResponse(path, media_type=kind, headers=NO_STORE)

    @router.get("/metadata", response_class=StreamingResponse)
    def metadata(camera_id: CameraId, who: Viewer) -> StreamingResponse:
        """Server-sent events: tracks (anonymous, rotating ids), boxes, speed, direction, counts."""
        opened(camera_id, who, "metadata")
        return StreamingResponse(
            sse_events(outputs.follow_metadata(camera_id)), media_type="text/event-stream", headers=NO_STORE
        )

    return router
