"""The DeepStream pipeline on fake GStreamer elements: what it is built of, and cameras joining and leaving
it at runtime through the registry's StreamControl protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_deepstream as fake
import numpy as np
import pytest

from orchestrator.core.camera_settings import CameraConfig
from orchestrator.core.detections import ObjectClass
from orchestrator.core.profiles import resolve_profile
from orchestrator.dataplane.deepstream.config import DeepStreamConfig, load_deepstream_config
from orchestrator.dataplane.deepstream.gst import DeepStreamUnavailable, load_modules
from orchestrator.dataplane.deepstream.pipeline import DeepStreamPipeline, PipelineError, ensemble_detectors
from orchestrator.inference.repository import ModelRepository
from orchestrator.services.cameras import StreamControl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> DeepStreamConfig:
    return load_deepstream_config(ROOT / "deepstream_configs")


@pytest.fixture
def reports() -> list[tuple[str, str, dict[str, Any]]]:
    return []


@pytest.fixture
def pipeline(config: DeepStreamConfig, reports: list[Any]) -> DeepStreamPipeline:
    detectors = ensemble_detectors(ModelRepository(ROOT / "triton_models"), config.settings.inference.model)
    return DeepStreamPipeline(config, fake.modules(), detectors, lambda *a: reports.append(a))


def camera(camera_id: str, source: str = "rtsp://10.0.0.5/stream1", **fields: Any) -> CameraConfig:
    return CameraConfig(id=camera_id, source=source, **fields)


def chain(start: fake.Element) -> list[str]:
    names, element = [], start
    while element is not None:
        names.append(element.name)
        element = element.linked_to
    return names


def test_the_fixed_chain_is_built_from_the_settings(
    pipeline: DeepStreamPipeline, config: DeepStreamConfig
) -> None:
    children = pipeline.pipeline.children
    mux = children["mux"]
    assert chain(mux) == ["mux", "infer", "tracker", "to_rgba", "rgba", "demux"]
    settings = config.settings
    assert mux.properties == {
        "batch-size": settings.mux.batch_size,
        "width": 1920,
        "height": 1080,
        "batched-push-timeout": settings.mux.batched_push_timeout_us,
        "live-source": True,
    }
    assert children["infer"].properties["config-file-path"] == str(config.folder / "nvinferserver_grpc.txt")
    assert children["tracker"].properties["ll-config-file"] == str(config.folder / "tracker_nvdcf.yml")
    assert children["rgba"].properties["caps"] == "caps:video/x-raw(memory:NVMM), format=RGBA"
    # The detection probe after nvinferserver, the masking probe on the RGBA surface before the demuxer.
    assert [type(p[1]).__name__ for p in children["infer"].pads["src"].probes] == ["DetectionProbe"]
    assert [type(p[1]).__name__ for p in children["rgba"].pads["src"].probes] == ["MaskingProbe"]
    assert pipeline.pipeline.bus.watched


def test_a_missing_plugin_is_named(config: DeepStreamConfig) -> None:
    modules = fake.modules()
    modules.Gst.ElementFactory.missing.add("nvinferserver")
    with pytest.raises(PipelineError, match=r"cannot create element 'infer' \(nvinferserver\)"):
        DeepStreamPipeline(config, modules, {})


def test_a_camera_joins_with_a_source_bin_a_branch_and_an_rtsp_mount(pipeline: DeepStreamPipeline) -> None:
    control: StreamControl = pipeline
    control.start_camera(camera("gate", loop=False), resolve_profile("traffic"))

    children = pipeline.pipeline.children
    source = children["source_0"]
    assert source.factory == "nvurisrcbin" and source.properties["uri"] == "rtsp://10.0.0.5/stream1"
    assert "sink_0" in children["mux"].pads and "src_0" in children["demux"].pads
    assert children["demux"].pads["src_0"].peer is children["queue_0"].pads["sink"]
    assert chain(children["queue_0"]) == ["queue_0", "to_nv12_0", "encoder_0", "pay_0", "udp_0"]
    assert children["udp_0"].properties["port"] == 5400
    assert children["encoder_0"].properties["bitrate"] == 4_000_000
    launch = pipeline.rtsp.mounts.factories["/gate"].launch
    assert "udpsrc name=pay0 port=5400" in launch and "H264" in launch
    stream = pipeline.stream_for(0)
    assert stream is not None and stream.context.profile.name == "traffic"
    assert (stream.context.width, stream.context.height) == (1920, 1080)

    # nvurisrcbin shows its video pad once the stream is known: it is linked to the camera's mux pad.
    video = fake.Pad("vsrc_0", source)
    source.emit("pad-added", video)
    assert video.peer is children["mux"].pads["sink_0"]


def test_a_camera_leaves_without_disturbing_the_others(pipeline: DeepStreamPipeline) -> None:
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))
    pipeline.start_camera(camera("b"), resolve_profile("public_space"))
    mux, demux = pipeline.pipeline.children["mux"], pipeline.pipeline.children["demux"]
    mux_pad = mux.pads["sink_0"]

    pipeline.stop_camera("a")

    assert pipeline.cameras == {"b": 1}
    assert pipeline.stream_for(0) is None and pipeline.stream_for(1) is not None
    assert mux_pad.events == [("flush-stop", False)] and mux.released == [mux_pad]
    assert [p.name for p in demux.released] == ["src_0"]
    assert {"source_0", "queue_0", "encoder_0", "udp_0"} <= set(pipeline.pipeline.removed)
    assert not any(name.endswith("_0") for name in pipeline.pipeline.children)
    assert set(pipeline.rtsp.mounts.factories) == {"/b"}
    assert "source_1" in pipeline.pipeline.children

    # The freed slot (mux pad, UDP port) goes to the next camera.
    pipeline.start_camera(camera("c"), resolve_profile("public_space"))
    assert pipeline.cameras == {"b": 1, "c": 0}
    assert pipeline.pipeline.children["udp_0"].properties["port"] == 5400
    pipeline.stop_camera("unknown")  # nothing to stop: no error


def test_a_changed_profile_applies_in_place_and_a_changed_source_restarts(
    pipeline: DeepStreamPipeline,
) -> None:
    pipeline.start_camera(camera("a", zone="traffic"), resolve_profile("traffic"))
    source = pipeline.pipeline.children["source_0"]

    pipeline.update_camera(
        camera("a", privacy_zones=[[(0, 0), (1, 0), (1, 1)]]), resolve_profile("restricted")
    )
    stream = pipeline.stream_for(0)
    assert stream is not None and stream.context.profile.name == "restricted" and stream.context.privacy_zones
    assert pipeline.pipeline.children["source_0"] is source

    pipeline.update_camera(camera("a", source="rtsp://10.0.0.6/other"), resolve_profile("restricted"))
    assert pipeline.pipeline.children["source_0"] is not source
    assert pipeline.pipeline.children["source_0"].properties["uri"] == "rtsp://10.0.0.6/other"


def test_more_cameras_than_slots_is_refused(config: DeepStreamConfig) -> None:
    small = DeepStreamConfig(
        config.folder,
        config.settings.model_copy(
            update={"sources": config.settings.sources.model_copy(update={"max_cameras": 1})}
        ),
        config.nvinferserver,
        config.tracker,
    )
    pipeline = DeepStreamPipeline(small, fake.modules(), {})
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))
    with pytest.raises(PipelineError, match=r"no free source slot for camera 'b'"):
        pipeline.start_camera(camera("b"), resolve_profile("public_space"))


def test_a_bus_error_inside_a_source_bin_reaches_that_camera_only(
    pipeline: DeepStreamPipeline, reports: list[Any]
) -> None:
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))
    pipeline.start_camera(camera("b"), resolve_profile("public_space"))
    inner = fake.Element("rtspsrc", "src_inside")
    inner.parent = pipeline.pipeline.children["source_1"]  # errors come from elements deep inside the bin

    pipeline.pipeline.bus.post(fake.Message("error", inner, "Could not open resource for reading"))

    assert pipeline.status["b"]["state"] == "error"
    assert pipeline.status["b"]["error"] == "Could not open resource for reading"
    assert pipeline.status["a"]["state"] == "starting"
    message = "Could not open resource for reading"
    assert reports == [
        ("status", "b", {"state": "error", "slot": 1, "error": message}),
        ("event", "b", {"action": "stream_error", "error": message}),
    ]


def test_a_bus_error_in_the_shared_chain_reaches_every_camera(
    pipeline: DeepStreamPipeline, reports: list[Any]
) -> None:
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))
    pipeline.start_camera(camera("b"), resolve_profile("public_space"))
    pipeline.pipeline.bus.post(
        fake.Message("error", pipeline.pipeline.children["infer"], "Triton unreachable")
    )
    assert {c for _, c, _ in reports} == {"a", "b"}
    assert all(pipeline.status[c]["state"] == "error" for c in ("a", "b"))


def test_ensemble_detectors_plan_with_the_models_traits_and_never_detect() -> None:
    detectors = ensemble_detectors(ModelRepository(ROOT / "triton_models"), "cityveil_detect")
    face = detectors[ObjectClass.FACE]
    assert face.traits.reliable_min_px == 12 and face.label == "cityveil_detect/face_centerface:deepstream"
    with pytest.raises(RuntimeError, match="nvinferserver detects"):
        face.detect([], 1.0, 0.5)


def test_without_deepstream_loading_says_what_is_missing() -> None:
    pytest.importorskip("gi")
    with pytest.raises(DeepStreamUnavailable, match="NGC DeepStream 7 Triton image"):
        load_modules()


def test_a_camera_whose_branch_cannot_be_made_leaves_nothing_behind(config: DeepStreamConfig) -> None:
    modules = fake.modules()
    pipeline = DeepStreamPipeline(config, modules, {})
    before = set(pipeline.pipeline.children)
    modules.Gst.ElementFactory.missing.add("nvv4l2h264enc")

    with pytest.raises(PipelineError, match=r"cannot create element 'encoder_0' \(nvv4l2h264enc\)"):
        pipeline.start_camera(camera("a"), resolve_profile("public_space"))

    assert set(pipeline.pipeline.children) == before and pipeline.cameras == {}
    modules.Gst.ElementFactory.missing.clear()
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))  # the slot is usable again
    assert pipeline.cameras == {"a": 0}


def test_processing_summaries_count_masked_and_painted_over_frames_per_camera(
    config: DeepStreamConfig, reports: list[Any]
) -> None:
    modules = fake.modules()
    surfaces = [np.zeros((1080, 1920, 4), np.uint8) for _ in range(3)]
    pipeline = DeepStreamPipeline(
        config,
        modules,
        ensemble_detectors(ModelRepository(ROOT / "triton_models"), "cityveil_detect"),
        lambda *a: reports.append(a),
        map_surface=lambda _pyds, _buffer, batch_id: surfaces[batch_id],
        mask=lambda *_: 0,
        summary_interval_s=0.0,
    )
    pipeline.start_camera(camera("a"), resolve_profile("public_space"))
    face = fake.ObjectMeta(class_id=int(ObjectClass.FACE), confidence=0.9, object_id=3)
    face.rect_params.left, face.rect_params.top, face.rect_params.width, face.rect_params.height = (
        10,
        10,
        40,
        40,
    )
    unreadable = fake.ObjectMeta()
    unreadable.rect_params = None  # type: ignore[assignment]
    frames = [fake.FrameMeta(0, 0, 0, [face]), fake.FrameMeta(0, 1, 1, [unreadable]), fake.FrameMeta(7, 2, 0)]
    probe = pipeline.pipeline.children["rgba"].pads["src"].probes[0][1]

    probe(None, fake.probe_info(fake.Buffer(modules.pyds, fake.BatchMeta(frames))))
    assert reports == []  # nothing is reported from the streaming thread
    pipeline.report_summaries()

    ((kind, camera_id, summary),) = reports
    assert (kind, camera_id, summary["profile"]) == ("summary", "a", "public_space")
    assert (summary["frames"], summary["failed_frames"]) == (2, 1)
    assert summary["masks"] == {"face": 1, "frame": 1}
    assert probe.counters.failed_frames == 2  # the unreadable frame, and the frame of no camera
