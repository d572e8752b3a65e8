"""`cityveil models list|add|activate|rollback --server URL`: the command-line face of /v1/models.

The server does the work (validation, the hot swap, the audit entries); this only sends the request and
prints the answer. The key is an ml_engineer (or admin) key: --key, or CITYVEIL_API_KEY.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The server refused (status 4xx: the request was wrong) or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _detail(raw: bytes) -> str:
    try:
        detail = json.loads(raw)["detail"]
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:300]
    return detail if isinstance(detail, str) else "; ".join(str(d.get("msg", d)) for d in detail)


class ModelsApi:
    def __init__(self, server: str, key: str, timeout_s: float = 600.0) -> None:
        self.server = server.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s  # an upload waits for its validation

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        kind: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **(extra or {})}
        if body is not None:
            headers["Content-Type"] = kind
        request = urllib.request.Request(self.server + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _detail(error.read())) from None
        except (urllib.error.URLError, OSError) as error:
            raise ApiError(0, f"cannot reach {self.server}: {getattr(error, 'reason', error)}") from None

    def list(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/models"))

    def add(self, name: str, data: bytes, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Upload a version; `parameters`: the config parameters it changes (the server checks them)."""
        extra = {"X-Cityveil-Config": json.dumps({"parameters": parameters})} if parameters else None
        path = f"/v1/models/{name}/versions"
        return dict(self._call("POST", path, data, "application/octet-stream", extra))

    def activate(self, name: str, version: int) -> dict[str, Any]:
        return dict(
            self._call("POST", f"/v1/models/{name}/activate", json.dumps({"version": version}).encode())
        )

    def rollback(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/models/{name}/rollback", b""))


def describe(model: dict[str, Any]) -> str:
    versions = ", ".join(
        f"{v['version']}{'*' if v['serving'] else ''}"
        + (f" ({v['server_state']})" if v["server_state"] else "")
        for v in model["versions"]
    )
    return f"{model['name']}\tserving={model['serving_version']}\tversions={versions}"
