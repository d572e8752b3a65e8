"""Which inference backend the data plane uses: `embedded` (ONNX Runtime in process) or
triton://HOST:PORT[?shared_memory=none|system|cuda].

Kept apart from the Triton client so that choosing a backend needs no `triton` extra installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qs, urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
USAGE = "inference must be 'embedded' or triton://HOST:PORT[?shared_memory=none|system|cuda]"


class SharedMemory(str, Enum):
    """How frames reach a server: in the gRPC request, or through a region the server maps."""

    NONE = "none"
    SYSTEM = "system"  # POSIX shared memory: any local server
    CUDA = "cuda"  # CUDA memory on the server's GPU: a local GPU server, the `gpu` extra


@dataclass(frozen=True)
class TritonOptions:
    """`url` HOST:PORT of the gRPC endpoint; `timeout_s` the deadline of one inference (past it the frames
    fail closed); `max_in_flight` requests at once; `shared_memory` None: system shared memory when the
    server is local, else none; `cuda_device` the GPU of CUDA shared memory regions."""

    url: str
    timeout_s: float = 5.0
    max_in_flight: int = 4
    shared_memory: SharedMemory | None = None
    cuda_device: int = 0

    @property
    def shared_memory_kind(self) -> SharedMemory:
        if self.shared_memory is not None:
            return self.shared_memory
        local = self.url.rsplit(":", 1)[0].strip("[]") in LOCAL_HOSTS
        return SharedMemory.SYSTEM if local else SharedMemory.NONE


CUDA_SHARED_MEMORY_NEEDS = "shared_memory=cuda needs the gpu extra (cuda-python) on a host with a CUDA GPU"


def cuda_shared_memory_installed() -> bool:
    """Whether cuda-python, which tritonclient's CUDA shared memory uses, is installed (nothing imported)."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except ModuleNotFoundError:  # not even the `cuda` namespace
        return False


def parse_inference(value: str) -> TritonOptions | None:
    """`embedded` -> None; `triton://HOST:PORT[?shared_memory=...]` -> the Triton backend's options."""
    if value == "embedded":
        return None
    parts = urlsplit(value)
    if (
        parts.scheme != "triton"
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"{USAGE}, not {value!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise ValueError(f"{USAGE}, not {value!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"shared_memory"})
    if unknown:
        raise ValueError(f"{USAGE}: unknown option {unknown[0]!r} in {value!r}")
    shared_memory = None
    if "shared_memory" in query:
        if len(query["shared_memory"]) > 1:
            raise ValueError(f"{USAGE}: shared_memory is given more than once in {value!r}")
        choice = query["shared_memory"][0]
        try:
            shared_memory = SharedMemory(choice)
        except ValueError:
            raise ValueError(f"{USAGE}: shared_memory cannot be {choice!r}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return TritonOptions(url=f"{host}:{port}", shared_memory=shared_memory)
