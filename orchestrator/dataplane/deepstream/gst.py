"""GStreamer, its RTSP server and DeepStream's pyds, imported when a pipeline is built (never at import).

pyds comes with the DeepStream SDK (the NGC DeepStream image); the `pyds` on PyPI is an unrelated package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The plugins the pipeline is made of; their absence is named at start-up.
ELEMENTS = (
    "nvurisrcbin",
    "nvstreammux",
    "nvinferserver",
    "nvtracker",
    "nvvideoconvert",
    "nvstreamdemux",
    "nvv4l2h264enc",
    "rtph264pay",
    "udpsink",
)
NEEDS = "the NGC DeepStream 7 Triton image (pyds from the SDK, GStreamer with its RTSP server)"


class DeepStreamUnavailable(RuntimeError):
    """The DeepStream engine cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class DeepStreamModules:
    GLib: Any
    Gst: Any
    GstRtspServer: Any
    pyds: Any


def load_modules() -> DeepStreamModules:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        import pyds
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:  # ValueError: a GObject typelib is missing
        raise DeepStreamUnavailable(
            f"the DeepStream engine is unavailable ({exc}); it runs in {NEEDS}"
        ) from exc
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        raise DeepStreamUnavailable(
            f"no GStreamer {', '.join(missing)}: the DeepStream engine runs in {NEEDS}"
        )
    return DeepStreamModules(GLib, Gst, GstRtspServer, pyds)
