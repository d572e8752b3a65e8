"""Model versions (role ml_engineer): list, upload (validated before it may serve), activate, roll back.
A version is activated without stopping streams: Triton loads it beside the serving one, then swaps."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from ...inference.version_config import TUNABLE
from ...services.container import Services
from ...services.keys import Principal, Role
from ...services.model_config import HEADER, decode
from ..auth import requires
from ..schemas import ModelName, ModelOut, VersionAdded

ONNX_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the ONNX file, with the serving version's input and output tensor names",
    }
}
CONFIG_CHANGES = (
    'optional JSON: config changes for this version, `{"parameters": {KEY: NUMBER}}`, KEY one of '
    + ", ".join(f"`{key}` ({low:g} to {high:g})" for key, (low, high) in TUNABLE.items())
    + "; validated with them, written into the model's configs when it is activated. Others: 422."
)


def model_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1/models", tags=["models"])
    Engineer = Annotated[Principal, Depends(requires(services.keys, Role.ML_ENGINEER))]

    @router.get("")
    def list_models(who: Engineer) -> list[ModelOut]:
        """Each detector model: its versions, which one serves, and the inference server's state of each."""
        return [ModelOut(**m) for m in services.models.list()]

    @router.post(
        "/{name}/versions",
        status_code=201,
        openapi_extra=ONNX_BODY,
        responses={422: {"description": "refused at validation; the reason says why"}},
    )
    async def add_version(
        name: ModelName,
        request: Request,
        who: Engineer,
        config: Annotated[str | None, Header(alias=HEADER, description=CONFIG_CHANGES)] = None,
    ) -> VersionAdded:
        """Upload a new version, with optional config changes; it is validated with them (loads, runs
        canary frames, meets the output contract, masks the canary set about as well as the serving
        version) before it is kept. Not yet serving."""
        changes = decode(config)
        data = await request.body()
        added: dict[str, Any] = await run_in_threadpool(services.models.add, name, data, who.actor, changes)
        return VersionAdded(**added)

    @router.post("/{name}/activate")
    def activate(
        name: ModelName,
        version: Annotated[int, Body(embed=True, ge=1, le=10**9, description="a validated version")],
        who: Engineer,
    ) -> ModelOut:
        """Serve this version: hot swap on the inference server; on failure the serving version stays."""
        return ModelOut(**services.models.activate(name, version, who.actor))

    @router.post("/{name}/rollback")
    def rollback(name: ModelName, who: Engineer) -> ModelOut:
        """Serve the version that served before the current one."""
        return ModelOut(**services.models.rollback(name, who.actor))

    return router
