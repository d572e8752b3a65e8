"""Choosing how frames reach Triton, and the life of CUDA shared-memory regions (a fake CUDA layer and a
fake client record the calls: the real ones need a GPU; tests/triton covers system shared memory live)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from orchestrator.inference.onnx_backend import DeviceError
from orchestrator.inference.triton_backend import CudaRegions, SystemRegions, TritonClient, _Slot
from orchestrator.inference.triton_options import (
    SharedMemory,
    TritonOptions,
    cuda_shared_memory_installed,
    parse_inference,
)
from orchestrator.settings import ServerSettings


@pytest.mark.parametrize(
    ("value", "url", "kind"),
    [
        ("triton://127.0.0.1:8001", "127.0.0.1:8001", SharedMemory.SYSTEM),
        ("triton://[::1]:8001", "[::1]:8001", SharedMemory.SYSTEM),
        ("triton://gpu-node-3:8001", "gpu-node-3:8001", SharedMemory.NONE),
        ("triton://localhost:8001?shared_memory=cuda", "localhost:8001", SharedMemory.CUDA),
        ("triton://localhost:8001/?shared_memory=none", "localhost:8001", SharedMemory.NONE),
        ("triton://10.0.0.5:8001?shared_memory=system", "10.0.0.5:8001", SharedMemory.SYSTEM),
    ],
)
def test_the_inference_url_says_how_frames_travel(value: str, url: str, kind: SharedMemory) -> None:
    options = parse_inference(value)
    assert options is not None
    assert options.url == url
    assert options.shared_memory_kind is kind


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("triton://localhost:8001?shared_memory=gpu", "shared_memory cannot be 'gpu'"),
        ("triton://localhost:8001?deadline=3", "unknown option 'deadline'"),
        ("triton://localhost:8001?shared_memory=cuda&shared_memory=none", "given more than once"),
        ("triton://localhost:8001#cuda", "triton://HOST:PORT"),
        ("triton://admin@localhost:8001", "triton://HOST:PORT"),
    ],
)
def test_a_bad_option_is_refused_with_its_reason(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_inference(value)


class FakeCudaSharedMemory(types.ModuleType):
    """tritonclient.utils.cuda_shared_memory without CUDA: regions are host arrays, calls are recorded."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        super().__init__("tritonclient.utils.cuda_shared_memory")
        self.calls = calls

    def create_shared_memory_region(self, name: str, size: int, device: int) -> dict[str, Any]:
        self.calls.append(("create", name, size, device))
        return {"name": name, "memory": np.zeros(size, np.uint8)}

    def get_raw_handle(self, handle: dict[str, Any]) -> bytes:
        return f"ipc:{handle['name']}".encode()

    def set_shared_memory_region(self, handle: dict[str, Any], values: list[np.ndarray]) -> None:
        data = values[0].reshape(-1).view(np.uint8)
        handle["memory"][: data.size] = data
        self.calls.append(("write", handle["name"], data.size))

    def destroy_shared_memory_region(self, handle: dict[str, Any]) -> None:
        self.calls.append(("destroy", handle["name"]))


class FakeClient:
    """Records the calls; `refuse` names the calls the server answers with an error."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.refuse: set[str] = set()

    def register_cuda_shared_memory(self, name: str, raw: bytes, device: int, size: int) -> None:
        self.calls.append(("register", name, raw, device, size))
        if "register" in self.refuse:
            raise ConnectionError("server unreachable")

    def unregister_cuda_shared_memory(self, name: str) -> None:
        self.calls.append(("unregister", name))
        if "unregister" in self.refuse:
            raise RuntimeError(f"shared memory region '{name}' is in use")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    recorded: list[tuple[Any, ...]] = []
    monkeypatch.setitem(sys.modules, "tritonclient.utils.cuda_shared_memory", FakeCudaSharedMemory(recorded))
    return recorded


@pytest.fixture
def client(calls: list[tuple[Any, ...]]) -> FakeClient:
    return FakeClient(calls)


def cuda_slot(client: FakeClient, device: int = 0) -> _Slot:
    return _Slot(CudaRegions(client, device), "cv_0")  # type: ignore[arg-type]


def frames(count: int) -> np.ndarray:
    return np.full((count, 4, 6, 3), 7, np.uint8)


def test_a_region_on_the_chosen_gpu_is_registered_once_and_reused(
    client: FakeClient, calls: list[tuple[Any, ...]]
) -> None:
    slot = cuda_slot(client, device=1)
    first = slot.images(frames(2))
    slot.images(frames(2))
    assert calls == [
        ("create", "cv_0_0", 144, 1),
        ("register", "cv_0_0", b"ipc:cv_0_0", 1, 144),
        ("write", "cv_0_0", 144),
        ("write", "cv_0_0", 144),
    ]
    assert first.name() == "IMAGES" and first.shape() == [2, 4, 6, 3]
    assert first._get_tensor().parameters["shared_memory_region"].string_param == "cv_0_0"


def test_a_bigger_batch_gets_a_new_region_and_the_old_one_is_unregistered_before_it_is_freed(
    client: FakeClient, calls: list[tuple[Any, ...]]
) -> None:
    slot = cuda_slot(client)
    slot.images(frames(1))
    calls.clear()
    slot.images(frames(3))
    assert calls[:3] == [("unregister", "cv_0_0"), ("destroy", "cv_0_0"), ("create", "cv_0_1", 216, 0)]


def test_a_region_the_server_would_not_register_is_freed_at_once(
    client: FakeClient, calls: list[tuple[Any, ...]]
) -> None:
    slot = cuda_slot(client)
    client.refuse.add("register")
    for _ in range(3):  # the server is down: every request fails, and no GPU memory piles up
        with pytest.raises(ConnectionError):
            slot.images(frames(1))
    assert [c[0] for c in calls].count("create") == [c[0] for c in calls].count("destroy") == 3
    assert slot.handle is None and slot.retired == []


def test_after_a_failed_request_the_region_is_never_written_again(
    client: FakeClient, calls: list[tuple[Any, ...]]
) -> None:
    slot = cuda_slot(client)
    slot.images(frames(1))
    slot.retire()
    calls.clear()
    slot.images(frames(1))
    assert ("write", "cv_0_0", 72) not in calls
    assert ("create", "cv_0_1", 72, 0) in calls and ("write", "cv_0_1", 72) in calls


def test_a_retired_cuda_region_is_freed_only_once_the_server_lets_it_go(
    client: FakeClient, calls: list[tuple[Any, ...]]
) -> None:
    """Freeing CUDA memory the server still has open would hand it to the next allocation, under a running
    inference: the region waits until unregistering succeeds, even at close."""
    slot = cuda_slot(client)
    slot.images(frames(1))
    slot.retire()
    client.refuse.add("unregister")  # a late request still reads it
    slot.images(frames(2))  # a new region; the retired one is tried and kept
    slot.release()
    assert ("destroy", "cv_0_0") not in calls and ("destroy", "cv_0_1") not in calls
    assert [name for name, _ in slot.retired] == ["cv_0_0", "cv_0_1"]
    client.refuse.clear()
    slot.release()
    assert ("destroy", "cv_0_0") in calls and ("destroy", "cv_0_1") in calls and slot.retired == []


def test_without_shared_memory_the_frames_travel_in_the_request() -> None:
    tensor = _Slot(None, "cv_0").images(frames(1))
    assert tensor._get_content() == frames(1).tobytes()
    assert "shared_memory_region" not in tensor._get_tensor().parameters


def test_options_default_to_system_shared_memory_only_for_a_local_server() -> None:
    assert TritonOptions("127.0.0.1:8001").shared_memory_kind is SharedMemory.SYSTEM
    assert TritonOptions("triton:8001").shared_memory_kind is SharedMemory.NONE
    assert (
        TritonOptions("triton:8001", shared_memory=SharedMemory.CUDA).shared_memory_kind is SharedMemory.CUDA
    )


class FakeSystemClient:
    def __init__(self) -> None:
        self.registered: set[str] = set()

    def register_system_shared_memory(self, name: str, key: str, size: int) -> None:
        self.registered.add(name)

    def unregister_system_shared_memory(self, name: str) -> None:
        raise ConnectionError("server gone")


def test_a_retired_system_region_is_unlinked_at_once_even_if_the_server_is_gone() -> None:
    """POSIX memory may be freed under the server (it keeps its own mapping); left, it would outlive us.
    Only its registration waits to be undone."""
    slot = _Slot(SystemRegions(FakeSystemClient()), f"cv_test_{os.getpid()}")  # type: ignore[arg-type]
    slot.images(frames(1))
    segment = Path("/dev/shm") / slot.name
    assert segment.exists()
    slot.retire()
    assert not segment.exists()
    slot.release()  # the server is gone: unregistering fails, and the name is kept to try again
    assert slot.retired == [(segment.name, None)]


@pytest.mark.skipif(cuda_shared_memory_installed(), reason="cuda-python is installed here")
def test_cuda_shared_memory_without_cuda_python_is_a_clear_usage_error(tmp_path: Path) -> None:
    url = "triton://127.0.0.1:1?shared_memory=cuda"
    with pytest.raises(ValidationError, match="needs the gpu extra"):  # `cityveil serve`, at start
        ServerSettings(inference=url, data_dir=tmp_path)
    with pytest.raises(DeviceError, match="needs the gpu extra"):  # the CLI turns DeviceError into exit 2
        TritonClient(TritonOptions("127.0.0.1:1", shared_memory=SharedMemory.CUDA))
