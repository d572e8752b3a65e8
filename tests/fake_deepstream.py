"""Fake GStreamer, GstRtspServer and pyds: the subset of their APIs the DeepStream engine uses, recording
what is asked of them, so the pipeline, its probes and runtime changes are tested without a GPU.

Metadata lists are real linked lists (`.data`, `.next`), rebuilt from Python lists on each read as pyds
rebuilds its wrappers, so code that walks them wrongly fails here as it would on a GPU node.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from orchestrator.dataplane.deepstream.gst import DeepStreamModules

# --- GStreamer ---------------------------------------------------------------------------------------------


class Pad:
    def __init__(self, name: str, element: Element) -> None:
        self.name, self.element = name, element
        self.probes: list[tuple[Any, Any]] = []
        self.peer: Pad | None = None
        self.events: list[Any] = []

    def get_name(self) -> str:
        return self.name

    def add_probe(self, probe_type: Any, callback: Any) -> int:
        self.probes.append((probe_type, callback))
        return len(self.probes)

    def link(self, peer: Pad) -> str:
        self.peer = peer
        return Gst.PadLinkReturn.OK

    def send_event(self, event: Any) -> bool:
        self.events.append(event)
        return True


class Element:
    def __init__(self, factory: str, name: str) -> None:
        self.factory, self.name = factory, name
        self.properties: dict[str, Any] = {}
        self.linked_to: Element | None = None
        self.pads: dict[str, Pad] = {}
        self.released: list[Pad] = []
        self.handlers: dict[str, list[tuple[Any, tuple[Any, ...]]]] = {}
        self.state = Gst.State.NULL
        self.parent: Any = None

    def get_name(self) -> str:
        return self.name

    def get_parent(self) -> Any:
        return self.parent

    def set_property(self, key: str, value: Any) -> None:
        self.properties[key] = value

    def link(self, other: Element) -> bool:
        self.linked_to = other
        return True

    def get_static_pad(self, name: str) -> Pad:
        return self.pads.setdefault(name, Pad(name, self))

    def request_pad_simple(self, name: str) -> Pad:
        assert name not in self.pads, f"{self.name}: pad {name} requested twice"
        return self.pads.setdefault(name, Pad(name, self))

    def release_request_pad(self, pad: Pad) -> None:
        del self.pads[pad.name]
        self.released.append(pad)

    def connect(self, signal: str, handler: Any, *args: Any) -> int:
        self.handlers.setdefault(signal, []).append((handler, args))
        return 1

    def emit(self, signal: str, *values: Any) -> None:
        for handler, args in self.handlers.get(signal, []):
            handler(self, *values, *args)

    def set_state(self, state: str) -> str:
        self.state = state
        return Gst.StateChangeReturn.SUCCESS

    def sync_state_with_parent(self) -> bool:
        self.state = self.parent.state
        return True


@dataclass
class Message:
    type: str
    src: Element
    text: str

    def parse_error(self) -> tuple[Any, str]:
        return SimpleNamespace(message=self.text), "debug details"

    parse_warning = parse_error


class Bus:
    def __init__(self) -> None:
        self.handlers: list[Any] = []
        self.watched = False

    def add_signal_watch(self) -> None:
        self.watched = True

    def connect(self, _signal: str, handler: Any) -> None:
        self.handlers.append(handler)

    def post(self, message: Message) -> None:
        for handler in self.handlers:
            handler(self, message)


class Pipeline(Element):
    def __init__(self, name: str) -> None:
        super().__init__("pipeline", name)
        self.children: dict[str, Element] = {}
        self.removed: list[str] = []
        self.bus = Bus()

    def add(self, element: Element) -> None:
        assert element.name not in self.children, f"two elements named {element.name}"
        element.parent = self
        self.children[element.name] = element

    def remove(self, element: Element) -> None:
        del self.children[element.name]
        self.removed.append(element.name)

    def get_bus(self) -> Bus:
        return self.bus


class _ElementFactory:
    def __init__(self) -> None:
        self.missing: set[str] = set()  # factories whose plugin is "not installed"

    def make(self, factory: str, name: str) -> Element | None:
        return None if factory in self.missing else Element(factory, name)


Gst = SimpleNamespace(
    ElementFactory=_ElementFactory(),
    Pipeline=SimpleNamespace(new=Pipeline),
    Caps=SimpleNamespace(from_string=lambda text: f"caps:{text}"),
    PadProbeType=SimpleNamespace(BUFFER="buffer"),
    PadProbeReturn=SimpleNamespace(OK="ok", DROP="drop"),
    PadLinkReturn=SimpleNamespace(OK="link-ok"),
    State=SimpleNamespace(NULL="null", PLAYING="playing"),
    StateChangeReturn=SimpleNamespace(SUCCESS="success", FAILURE="failure"),
    MessageType=SimpleNamespace(ERROR="error", WARNING="warning", EOS="eos"),
    Event=SimpleNamespace(new_flush_stop=lambda reset: ("flush-stop", reset)),
)


class MountPoints:
    def __init__(self) -> None:
        self.factories: dict[str, Any] = {}

    def add_factory(self, path: str, factory: Any) -> None:
        self.factories[path] = factory

    def remove_factory(self, path: str) -> None:
        del self.factories[path]


class RTSPMediaFactory:
    def set_launch(self, launch: str) -> None:
        self.launch = launch

    def set_shared(self, shared: bool) -> None:
        self.shared = shared


class RTSPServer:
    def __init__(self) -> None:
        self.mounts = MountPoints()
        self.service = ""
        self.attached = False

    def set_service(self, service: str) -> None:
        self.service = service

    def get_mount_points(self) -> MountPoints:
        return self.mounts

    def attach(self, _context: Any) -> int:
        self.attached = True
        return 1


GstRtspServer = SimpleNamespace(RTSPServer=RTSPServer, RTSPMediaFactory=RTSPMediaFactory)

# --- pyds --------------------------------------------------------------------------------------------------


@dataclass
class GList:
    data: Any
    next: GList | None = None


def glist(items: list[Any]) -> GList | None:
    head = None
    for item in reversed(items):
        head = GList(item, head)
    return head


TENSOR_OUTPUT_META = "NVDSINFER_TENSOR_OUTPUT_META"


@dataclass
class ObjectMeta:
    class_id: int = 0
    confidence: float = 0.0
    object_id: int = 0
    unique_component_id: int = 0
    rect_params: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(left=0, top=0, width=0, height=0)
    )
    detector_bbox_info: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(
            org_bbox_coords=SimpleNamespace(left=0, top=0, width=0, height=0)
        )
    )


@dataclass
class FrameMeta:
    pad_index: int
    batch_id: int
    frame_num: int
    objects: list[ObjectMeta] = field(default_factory=list)
    user_meta: list[Any] = field(default_factory=list)
    bInferDone: bool = False  # pyds's name: nvtracker takes new objects only where it is set

    @property
    def obj_meta_list(self) -> GList | None:
        return glist(self.objects)

    @property
    def frame_user_meta_list(self) -> GList | None:
        return glist(self.user_meta)


@dataclass
class BatchMeta:
    frames: list[FrameMeta]

    @property
    def frame_meta_list(self) -> GList | None:
        return glist(self.frames)


def detections_meta(rows: np.ndarray, name: str = "DETECTIONS") -> SimpleNamespace:
    """nvinferserver's tensor output meta for one frame, holding `rows` [K,7] as the layer `name`."""
    buffer = np.ascontiguousarray(rows, dtype=np.float32)
    layer = SimpleNamespace(layerName=name, buffer=buffer, inferDims=SimpleNamespace(numElements=buffer.size))
    tensor = SimpleNamespace(num_output_layers=1, layers=[layer])
    return SimpleNamespace(base_meta=SimpleNamespace(meta_type=TENSOR_OUTPUT_META), user_meta_data=tensor)


def _identity(value: Any) -> Any:
    return value


class Pyds:
    NvDsFrameMeta = SimpleNamespace(cast=_identity)
    NvDsObjectMeta = SimpleNamespace(cast=_identity)
    NvDsUserMeta = SimpleNamespace(cast=_identity)
    NvDsInferTensorMeta = SimpleNamespace(cast=_identity)
    NvDsMetaType = SimpleNamespace(NVDSINFER_TENSOR_OUTPUT_META=TENSOR_OUTPUT_META)

    def __init__(self) -> None:
        self.batches: dict[int, BatchMeta] = {}

    def gst_buffer_get_nvds_batch_meta(self, buffer_hash: int) -> BatchMeta:
        return self.batches[buffer_hash]

    @staticmethod
    def nvds_acquire_obj_meta_from_pool(_batch_meta: BatchMeta) -> ObjectMeta:
        return ObjectMeta()

    @staticmethod
    def nvds_add_obj_meta_to_frame(frame_meta: FrameMeta, obj: ObjectMeta, _parent: Any) -> None:
        frame_meta.objects.append(obj)

    @staticmethod
    def get_nvds_LayerInfo(tensor_meta: Any, index: int) -> Any:
        return tensor_meta.layers[index]

    @staticmethod
    def get_ptr(buffer: np.ndarray) -> int:
        return int(buffer.ctypes.data)


_buffer_ids = itertools.count(1)


class Buffer:
    """A batched buffer: pyds finds its metadata by the buffer's hash."""

    def __init__(self, pyds: Pyds, batch: BatchMeta) -> None:
        self.id = next(_buffer_ids)
        pyds.batches[hash(self)] = batch


def probe_info(buffer: Buffer) -> SimpleNamespace:
    return SimpleNamespace(get_buffer=lambda: buffer)


def modules() -> DeepStreamModules:
    """Fresh fakes (element factories keep their `missing` set per test)."""
    gst = SimpleNamespace(**vars(Gst))
    gst.ElementFactory = _ElementFactory()
    return DeepStreamModules(GLib=None, Gst=gst, GstRtspServer=GstRtspServer, pyds=Pyds())
