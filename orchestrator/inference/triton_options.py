"""Which inference backend the data plane uses: `embedded` (ONNX Runtime in process) or triton://HOST:PORT.

Kept apart from the Triton client so that choosing a backend needs no `triton` extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class TritonOptions:
    """`url` HOST:PORT of the gRPC endpoint; `timeout_s` the deadline of one inference (past it the frames
    fail closed); `max_in_flight` requests at once; `shared_memory` None: when the server is local."""

    url: str
    timeout_s: float = 5.0
    max_in_flight: int = 4
    shared_memory: bool | None = None

    @property
    def uses_shared_memory(self) -> bool:
        if self.shared_memory is not None:
            return self.shared_memory
        return self.url.rsplit(":", 1)[0].strip("[]") in LOCAL_HOSTS


def parse_inference(value: str) -> TritonOptions | None:
    """`embedded` -> None; `triton://HOST:PORT` -> the Triton backend's options."""
    if value == "embedded":
        return None
    parts = urlsplit(value)
    if parts.scheme != "triton" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"inference must be 'embedded' or triton://HOST:PORT, not {value!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise ValueError(f"inference must be 'embedded' or triton://HOST:PORT, not {value!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return TritonOptions(url=f"{host}:{port}")
