"""The Triton inference backend: detectors that call the `cityveil_detect` ensemble over gRPC.

Requests are asynchronous with a bounded number in flight; frames go through shared memory when the
server is on this host: system shared memory by default, or CUDA shared memory on a GPU host. Every
failure (a deadline passed, the server gone, a bad answer) raises inside `detect`, which the frame step
turns into fail-closed frames.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import numpy as np
import structlog
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm

from ..core.detections import Detections, ObjectClass
from ..core.policy import DetectorTraits
from ..core.yuv import Frame
from ..video_frames import rgb_array
from .detectors import MODELS, detector_traits
from .onnx_backend import DeviceError
from .repository import ModelSpec
from .triton_options import CUDA_SHARED_MEMORY_NEEDS, SharedMemory, TritonOptions
from .triton_server import ENSEMBLE

log = structlog.get_logger(__name__)

LABEL_REFRESH_S = 2.0


class _Regions:
    """A kind of shared memory, as a slot uses it: create (allocate and register), write, unregister, free.

    `freeable_while_registered`: whether the client may free a region the server still has registered.
    POSIX memory, yes: the server holds its own mapping. CUDA memory, no: it must outlive the server's
    IPC handle, so it is freed only once unregistering succeeds.
    """

    freeable_while_registered: bool

    def create(self, name: str, size: int) -> Any:
        handle = self._allocate(name, size)
        try:
            self._register(name, handle, size)
        except BaseException:
            self.destroy(handle)  # never registered: nobody else holds it
            raise
        return handle

    def _allocate(self, name: str, size: int) -> Any:
        raise NotImplementedError

    def _register(self, name: str, handle: Any, size: int) -> None:
        raise NotImplementedError

    def write(self, handle: Any, batch: np.ndarray) -> None:
        raise NotImplementedError

    def unregister(self, name: str) -> None:
        raise NotImplementedError

    def destroy(self, handle: Any) -> None:
        raise NotImplementedError


class SystemRegions(_Regions):
    """POSIX shared memory (`/dev/shm`): the server maps the client's pages, nothing crosses the socket."""

    freeable_while_registered = True

    def __init__(self, client: grpcclient.InferenceServerClient) -> None:
        self.client = client

    def _allocate(self, name: str, size: int) -> Any:
        return shm.create_shared_memory_region(name, f"/{name}", size)

    def _register(self, name: str, handle: Any, size: int) -> None:
        self.client.register_system_shared_memory(name, f"/{name}", size)

    def write(self, handle: Any, batch: np.ndarray) -> None:
        shm.set_shared_memory_region(handle, [batch])

    def unregister(self, name: str) -> None:
        self.client.unregister_system_shared_memory(name)

    def destroy(self, handle: Any) -> None:
        shm.destroy_shared_memory_region(handle)


class CudaRegions(_Regions):
    """CUDA memory on the server's GPU, shared through a CUDA IPC handle: the frames are copied to the GPU
    once, by this client, and the ensemble's preprocess step resizes them there (no host copy in Triton).
    Needs the `gpu` extra (cuda-python) and a GPU on this host."""

    freeable_while_registered = False

    def __init__(self, client: grpcclient.InferenceServerClient, device: int) -> None:
        try:  # imports cuda-python: GPU hosts only
            import tritonclient.utils.cuda_shared_memory as cudashm
        except (ImportError, RuntimeError) as exc:  # tritonclient raises RuntimeError without cuda-python
            raise DeviceError(CUDA_SHARED_MEMORY_NEEDS) from exc
        self.client, self.device, self.cudashm = client, device, cudashm

    def _allocate(self, name: str, size: int) -> Any:
        return self.cudashm.create_shared_memory_region(name, size, self.device)

    def _register(self, name: str, handle: Any, size: int) -> None:
        self.client.register_cuda_shared_memory(name, self.cudashm.get_raw_handle(handle), self.device, size)

    def write(self, handle: Any, batch: np.ndarray) -> None:
        self.cudashm.set_shared_memory_region(handle, [batch])

    def unregister(self, name: str) -> None:
        self.client.unregister_cuda_shared_memory(name)

    def destroy(self, handle: Any) -> None:
        self.cudashm.destroy_shared_memory_region(handle)


class _Slot:
    """One request's right to be in flight, with its shared-memory region for the frames (grown as needed).

    After a failed request the server may still be reading the region (a client deadline does not stop
    it), so the region is retired, never written again: another stream's frames must not replace these
    frames under a running inference. The next request gets a fresh region. A retired region is freed
    once the server lets it go, tried whenever the slot needs a new region and at close: Triton refuses
    to unregister a region a request still uses ("it is currently in use").
    """

    def __init__(self, regions: _Regions | None, name: str) -> None:
        self.regions = regions  # None: frames travel in the gRPC request
        self.base = name
        self.name = name
        self.handle: Any = None
        self.size = 0
        self.generation = 0
        # Regions the server may still read: name, and the handle where it is not freed yet (CUDA).
        self.retired: list[tuple[str, Any]] = []

    def images(self, batch: np.ndarray) -> grpcclient.InferInput:
        tensor = grpcclient.InferInput("IMAGES", list(batch.shape), "UINT8")
        if self.regions is None:
            tensor.set_data_from_numpy(batch)
            return tensor
        if batch.nbytes > self.size:
            self.release()
            self.name = f"{self.base}_{self.generation}"
            self.generation += 1
            self.handle = self.regions.create(self.name, batch.nbytes)
            self.size = batch.nbytes
        self.regions.write(self.handle, batch)
        tensor.set_shared_memory(self.name, batch.nbytes)
        return tensor

    def retire(self) -> None:
        """Never write the current region again (after a failed request). POSIX memory is freed at once
        (the server keeps its own mapping); a CUDA region waits until the server lets it go."""
        if self.handle is None or self.regions is None:
            return
        handle = self.handle
        if self.regions.freeable_while_registered:
            self.regions.destroy(handle)
            handle = None
        self.retired.append((self.name, handle))
        self.handle, self.size = None, 0

    def release(self) -> None:
        """Unregister the current region and every retired one, and free those the server has let go of."""
        self.retire()
        self.retired = [(name, handle) for name, handle in self.retired if not self._free(name, handle)]

    def _free(self, name: str, handle: Any) -> bool:
        assert self.regions is not None
        try:
            self.regions.unregister(name)
        except Exception as exc:  # still in use by a late request, or the server is gone
            log.warning("shared_memory_not_unregistered", region=name, error=str(exc))
            return False  # kept: tried again later; a CUDA region left at exit goes with the process
        if handle is not None:
            self.regions.destroy(handle)
        return True


def _regions(client: grpcclient.InferenceServerClient, options: TritonOptions) -> _Regions | None:
    kind = options.shared_memory_kind
    if kind == SharedMemory.SYSTEM:
        return SystemRegions(client)
    if kind == SharedMemory.CUDA:
        return CudaRegions(client, options.cuda_device)
    return None


def _scalar_input(name: str, value: float, batch: int) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [batch, 1], "FP32")
    tensor.set_data_from_numpy(np.full((batch, 1), value, dtype=np.float32))
    return tensor


class TritonClient:
    """One gRPC connection to the server, shared by the detectors of a process."""

    def __init__(self, options: TritonOptions) -> None:
        self.options = options
        self.client = grpcclient.InferenceServerClient(options.url)
        self._slots: queue.Queue[_Slot] = queue.Queue()
        try:
            regions = _regions(self.client, options)
        except Exception:  # no CUDA shared memory here: the connection is not kept open for nothing
            self.client.close()
            raise
        tag = f"cityveil_{threading.get_native_id()}_{id(self):x}"
        for k in range(options.max_in_flight):
            self._slots.put(_Slot(regions, f"{tag}_{k}"))

    def served_version(self, model: str) -> str:
        """The ready version of a model on the server (what the ensemble's step runs)."""
        index = self.client.get_model_repository_index().models
        ready = [int(m.version) for m in index if m.name == model and m.state == "READY"]
        return str(max(ready)) if ready else "?"

    def submit(
        self, frames: list[Frame], object_class: ObjectClass, scale: float, threshold: float
    ) -> Callable[[], Detections]:
        """Send one request (waiting only while `max_in_flight` are out); returns the wait for its answer,
        which raises what went wrong: no free slot, the send, the deadline, the answer."""
        future: Future[Detections] = Future()
        batch = np.stack([rgb_array(frame) for frame in frames])  # the ensemble takes RGB
        try:
            slot = self._slots.get(timeout=self.options.timeout_s)
        except queue.Empty:
            future.set_exception(TimeoutError(f"no inference slot free within {self.options.timeout_s}s"))
        else:
            self._send(slot, future, batch, object_class, scale, threshold)
        # The gRPC deadline ends the call; the margin only covers a callback that never comes.
        return partial(future.result, self.options.timeout_s + 1.0)

    def _send(
        self,
        slot: _Slot,
        future: Future[Detections],
        batch: np.ndarray,
        object_class: ObjectClass,
        scale: float,
        threshold: float,
    ) -> None:
        def done(result: Any, error: Any) -> None:
            if error is not None:
                slot.retire()
                self._slots.put(slot)
                future.set_exception(error)
                return
            self._slots.put(slot)
            try:
                future.set_result(Detections.from_rows(result.as_numpy("DETECTIONS")))
            except Exception as exc:  # a malformed answer fails closed like any other
                future.set_exception(exc)

        try:
            inputs = [slot.images(batch)]
            for other in MODELS:  # every class the ensemble serves: 0 skips the others
                share = scale if other == object_class else 0.0
                inputs.append(_scalar_input(f"{other.name}_SCALE", share, len(batch)))
            inputs.append(_scalar_input(f"{object_class.name}_THRESHOLD", threshold, len(batch)))
            self.client.async_infer(
                ENSEMBLE,
                inputs,
                callback=done,
                outputs=[grpcclient.InferRequestedOutput("DETECTIONS")],
                client_timeout=self.options.timeout_s,
            )
        except Exception as exc:  # not sent: the slot is free again, its region retired to be safe
            slot.retire()
            self._slots.put(slot)
            future.set_exception(exc)

    def close(self) -> None:
        while not self._slots.empty():
            self._slots.get_nowait().release()
        self.client.close()


class TritonDetector:
    """The Detector protocol over the ensemble, for one object class; traits from the local repository."""

    def __init__(
        self, client: TritonClient, object_class: ObjectClass, spec: ModelSpec, box_slack: float
    ) -> None:
        self.client = client
        self.object_class = object_class
        self.model = spec.name
        self.traits: DetectorTraits = detector_traits(spec, box_slack)
        self.version = client.served_version(spec.name)
        self._checked = time.monotonic()

    @property
    def label(self) -> str:
        """`model:version:triton`, the version asked of the server now and then: a hot swap shows up in
        the stream status and metrics within LABEL_REFRESH_S."""
        if time.monotonic() - self._checked > LABEL_REFRESH_S:
            self._checked = time.monotonic()
            try:
                self.version = self.client.served_version(self.model)
            except Exception as exc:  # the label is informative; inference reports its own failures
                log.warning("served_version_unknown", model=self.model, error=str(exc))
        return f"{self.model}:{self.version}:triton"

    def submit(self, frames: list[Frame], scale: float, threshold: float) -> Callable[[], Detections]:
        return self.client.submit(frames, self.object_class, scale, threshold)

    def detect(self, frames: list[Frame], scale: float, threshold: float) -> Detections:
        return self.submit(frames, scale, threshold)()


class TritonModelControl:
    """Triton's explicit model control, for the model manager's hot swaps."""

    def __init__(self, url: str) -> None:
        self.client = grpcclient.InferenceServerClient(url)

    def load(self, name: str) -> None:
        """(Re)load with the config on disk: the new version serves once ready, the old one drains."""
        self.client.load_model(name)

    def states(self) -> dict[tuple[str, int], str]:
        index = self.client.get_model_repository_index().models
        return {(m.name, int(m.version)): m.state for m in index if m.version}
