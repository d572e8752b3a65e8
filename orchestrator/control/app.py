"""The FastAPI app factory. Routes validate and hand over to the data plane; no state at import."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response, StreamingResponse

from ..dataplane.live.hls import PLAYLIST, servable
from ..dataplane.live.outputs import MJPEG_BOUNDARY, CameraOutputs, EncodedFrame, mjpeg_parts, sse_events


def create_app(outputs: CameraOutputs, hls_root: Path | None = None) -> FastAPI:
    app = FastAPI(title="CityVeil", summary="Masked camera outputs for video management systems")

    def known(camera_id: str) -> None:
        if camera_id not in outputs.cameras():
            raise HTTPException(status_code=404, detail=f"no camera {camera_id!r}")

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/v1/cameras/{camera_id}/snapshot.jpg",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}},
    )
    def snapshot(camera_id: str) -> Response:
        known(camera_id)
        frame: EncodedFrame | None = outputs.snapshot(camera_id)
        if frame is None:
            raise HTTPException(status_code=503, detail=f"camera {camera_id!r} has no masked frame yet")
        return Response(frame.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/v1/cameras/{camera_id}/stream.mjpeg", response_class=StreamingResponse)
    def mjpeg(camera_id: str) -> StreamingResponse:
        known(camera_id)
        return StreamingResponse(
            mjpeg_parts(outputs.follow(camera_id)),
            media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/v1/cameras/{camera_id}/hls/{name}", response_class=FileResponse)
    def hls(camera_id: str, name: str) -> FileResponse:
        """The live HLS playlist (`index.m3u8`) and its segments."""
        known(camera_id)
        path = hls_root / camera_id / name if hls_root is not None and servable(name) else None
        if path is None or not path.is_file():
            raise HTTPException(status_code=404, detail=f"no HLS file {name!r} for camera {camera_id!r}")
        kind = "application/vnd.apple.mpegurl" if name == PLAYLIST else "video/mp2t"
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-store"})

    @app.get("/v1/cameras/{camera_id}/metadata", response_class=StreamingResponse)
    def metadata(camera_id: str) -> StreamingResponse:
        """Server-sent events: tracks (anonymous, rotating ids), boxes, speed, direction, counts."""
        known(camera_id)
        return StreamingResponse(
            sse_events(outputs.follow_metadata(camera_id)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )

    return app
