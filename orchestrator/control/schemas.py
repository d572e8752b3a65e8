"""Response bodies of the API (request bodies are the configuration models of `core`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel

from ..core.camera_settings import CameraConfig
from ..core.profiles import Profile

# Path and query parameters as strict as the stored fields: a bad one is a 422, never a database error.
CameraId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
ProfileName = Annotated[str, Path(pattern=r"^[a-z0-9_\-]{1,64}$")]
ModelName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")]
FilterText = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f]*$")]


class Problem(BaseModel):
    detail: str  # one sentence: what was refused and why


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no API key, or not a valid one"},
    403: {"model": Problem, "description": "the key's role may not do this"},
    404: {"model": Problem, "description": "no such camera, profile or file"},
    409: {"model": Problem, "description": "conflicts with what is stored"},
}


class CameraLinks(BaseModel):
    rtsp: str | None
    rtsp_unavailable: str | None = None  # why there is no RTSP output on this server
    hls: str
    mjpeg: str
    snapshot: str
    metadata: str


class CameraOut(CameraConfig):
    """A registered camera; `source` never carries credentials."""

    created_at: str
    updated_at: str
    outputs: CameraLinks


class ProfileOut(Profile):
    builtin: bool


class AuditPage(BaseModel):
    entries: list[dict[str, Any]]
    next_after_seq: int | None  # pass as `after_seq` for the next page; null on the last page


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


class ModelVersionOut(BaseModel):
    version: int
    serving: bool
    server_state: str | None  # the inference server's (Triton: READY, UNAVAILABLE...); null: embedded
    sha256: str | None  # uploads only; pulled versions carry their provenance.json
    added_by: str | None
    parameters: dict[str, str]  # the config parameters this version changes (uploads only)
    validation: dict[str, Any] | None


class ModelOut(BaseModel):
    name: str
    serving_version: int
    versions: list[ModelVersionOut]


class VersionAdded(BaseModel):
    name: str
    version: int
    sha256: str
    added_by: str
    added_at: str
    parameters: dict[str, str]  # the config parameters this version changes
    validation: dict[str, Any]
