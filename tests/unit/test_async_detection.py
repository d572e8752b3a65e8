"""Detectors that keep requests in flight (the Triton backend): the frame step sends every group's request
before it waits for the first answer, and a failed answer still fails closed only the streams it served."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.core.policy import CameraContext
from orchestrator.dataplane.frame_step import StreamAnonymizer, process_streams
from orchestrator.inference.detectors import AsyncDetector, CenterFaceDetector
from unit.test_frame_step import FACE, FACE_BOX, PLATE, PLATE_BOX, FakeDetector, H, W, frames, profile


class InFlightDetector(FakeDetector):
    """Records when requests go out and when their answers are awaited."""

    def __init__(self, object_class: ObjectClass, box: tuple[int, int, int, int], events: list[str]) -> None:
        super().__init__(object_class, [box])
        self.events = events

    def submit(self, images: list[np.ndarray], scale: float, threshold: float) -> Callable[[], Detections]:
        name = self.object_class.name.lower()
        self.events.append(f"send {name}")

        def answer() -> Detections:
            self.events.append(f"wait {name}")
            return self.detect(images, scale, threshold)

        return answer


def test_every_request_is_out_before_the_first_answer_is_awaited() -> None:
    events: list[str] = []
    detectors = {
        FACE: InFlightDetector(FACE, FACE_BOX, events),
        PLATE: InFlightDetector(PLATE, PLATE_BOX, events),
    }
    assert all(isinstance(d, AsyncDetector) for d in detectors.values())
    context = CameraContext(profile(), W, H)
    streams = [StreamAnonymizer(context, detectors, name=f"cam{k}") for k in range(2)]
    results = process_streams([(s, frames(2, seed=k)) for k, s in enumerate(streams)])
    assert events == ["send face", "send plate", "wait face", "wait plate"]  # one request per detector
    assert all(r.masks == {"face": 1, "plate": 1} for per_stream in results for r in per_stream)


def test_a_failed_answer_fails_its_frames_closed() -> None:
    events: list[str] = []
    face = InFlightDetector(FACE, FACE_BOX, events)
    face.error = TimeoutError("deadline")
    stream = StreamAnonymizer(
        CameraContext(profile(), W, H), {FACE: face, PLATE: InFlightDetector(PLATE, PLATE_BOX, events)}
    )
    results = stream.process(frames(2))
    assert all(r.failed and (r.image == np.asarray(SOLID_COLOUR, np.uint8)).all() for r in results)


class _Spec:
    name = "face_centerface"

    @staticmethod
    def parameter(key: str) -> str | None:
        return "12" if key == "cityveil_reliable_min_px" else None


class _Model:
    """An ONNX Runtime session's stand-in that waits until the other detector's call has started."""

    name = label = "face_centerface"
    spec = _Spec()

    def __init__(self, started: threading.Event, other: threading.Event, patience_s: float = 5.0) -> None:
        self.started, self.other, self.patience_s = started, other, patience_s

    def run(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        self.started.set()
        if not self.other.wait(timeout=self.patience_s):
            raise TimeoutError("the other detector's call never started beside this one")
        n, _, h, w = blob.shape
        return {
            "heatmap": np.zeros((n, 1, h // 4, w // 4), np.float32),
            "scale": np.zeros((n, 2, h // 4, w // 4), np.float32),
            "offset": np.zeros((n, 2, h // 4, w // 4), np.float32),
        }


def test_embedded_detectors_run_beside_each_other_and_report_their_errors() -> None:
    face_started, plate_started = threading.Event(), threading.Event()
    face = CenterFaceDetector(_Model(face_started, plate_started))  # type: ignore[arg-type]
    other = CenterFaceDetector(_Model(plate_started, face_started))  # type: ignore[arg-type]
    assert isinstance(face, AsyncDetector)
    image = [np.zeros((64, 64, 3), np.uint8)]

    answers = [face.submit(image, 1.0, 0.5), other.submit(image, 1.0, 0.5)]  # each waits for the other

    assert [len(answer()) for answer in answers] == [0, 0]
    lone = CenterFaceDetector(_Model(threading.Event(), threading.Event(), 0.1))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):  # nothing runs beside it: its wait fails, and the caller sees it
        lone.submit(image, 1.0, 0.5)()


def test_a_request_that_cannot_be_sent_fails_its_frames_closed() -> None:
    class Unsendable(FakeDetector):
        def submit(self, images: list, scale: float, threshold: float) -> Callable[[], Detections]:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    stream = StreamAnonymizer(CameraContext(profile(), W, H), {FACE: Unsendable(FACE, [FACE_BOX])})
    results = stream.process(frames(2))
    assert all(r.failed and (r.image == np.asarray(SOLID_COLOUR, np.uint8)).all() for r in results)
