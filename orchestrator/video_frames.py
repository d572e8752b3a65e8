"""Between PyAV's decoded frames and the frame step's frames (`core.yuv.Frame`), both ways.

Video is kept in yuv420p, as H.264 carries it, wherever the size allows (even width and height): masks act
on its planes, and RGB is made only where something needs it (a detector's input, a JPEG).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange

from .core.yuv import Frame, Yuv420Frame


def decoded(frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> Frame:
    """A decoded frame, at `width` x `height` when given (a stream may change size midway): yuv420p in
    limited range where the size is even, else RGB.

    Limited range because that is what untagged yuv420p is read as: a full-range source (yuvj420p, or
    tagged full) passed through would come out with its contrast stretched.
    """
    width, height = width or frame.width, height or frame.height
    if width % 2 or height % 2:
        return frame.reformat(width, height, "rgb24").to_ndarray()
    as_is = (
        frame.format.name == "yuv420p"
        and frame.color_range != ColorRange.JPEG
        and (frame.width, frame.height) == (width, height)
    )
    if as_is:  # most video: a copy of the planes, without swscale's 0.9 ms a 720p frame
        return Yuv420Frame(frame.to_ndarray())
    return Yuv420Frame(frame.reformat(width, height, "yuv420p", dst_color_range=ColorRange.MPEG).to_ndarray())


def video_frame(frame: Frame) -> av.VideoFrame:
    """The frame as a PyAV frame, to encode or convert."""
    if isinstance(frame, Yuv420Frame):
        return av.VideoFrame.from_ndarray(frame.data, format="yuv420p")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")


def rgb_array(frame: Frame) -> np.ndarray:
    """The frame as an HxWx3 RGB array."""
    return frame if isinstance(frame, np.ndarray) else video_frame(frame).to_ndarray(format="rgb24")
