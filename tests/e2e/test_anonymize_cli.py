"""`cityveil anonymize` end to end: real models, real files, real PyAV decode and encode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import onnxruntime
import pytest
from PIL import Image

from orchestrator.cli import main
from orchestrator.core.masks import SOLID_COLOUR
from orchestrator.samples import FACE_CROP

FACE_BOX = (FACE_CROP[1].start, FACE_CROP[0].start, FACE_CROP[1].stop, FACE_CROP[0].stop)  # x1,y1,x2,y2


def cli(*args: object) -> int:
    """`cityveil ARGS...` in this process."""
    return main([str(a) for a in args])


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def changed_share(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int], tolerance: int = 24) -> float:
    """Share of pixels in the box that differ by more than `tolerance` (video coding noise is smaller)."""
    x1, y1, x2, y2 = box
    diff = np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).max(axis=2)
    return float((diff > tolerance).mean())


def test_photo_face_is_masked_and_the_rest_kept(media: dict, out_dir: Path) -> None:
    report = out_dir / "report.json"
    assert cli("anonymize", media["photo"], "-o", out_dir, "--style", "solid", "--report", report, "-q") == 0
    original = np.asarray(Image.open(media["photo"]).convert("RGB"))
    masked = np.asarray(Image.open(out_dir / "astronaut.png").convert("RGB"))
    x1, y1, x2, y2 = 180, 60, 270, 170  # the inner face: eyes, nose, mouth
    assert (masked[y1:y2, x1:x2] != original[y1:y2, x1:x2]).any(axis=2).mean() > 0.95
    changed = (masked != original).any(axis=2).mean()
    assert changed < 0.25, "most of the photograph must survive"
    entry = json.loads(report.read_text())["files"][0]
    assert entry["detections"]["face"] == 1
    assert entry["models"]["face"] == "face_centerface:1:int8"  # the CPU runs the int8 copy
    assert entry["parameters"]["profile"] == "public_space"
    low, high = entry["parameter_ranges"]["face"]["threshold"]
    assert 0 < low <= high <= 0.2
    assert entry["parameters"]["classes"]["face"]["inference_scale"] > 0


def test_folder_is_mirrored_with_names_kept(media: dict, tmp_path: Path, out_dir: Path) -> None:
    tree = tmp_path / "in"
    (tree / "day1" / "cam2").mkdir(parents=True)
    shutil.copy(media["photo"], tree / "day1" / "a.png")
    shutil.copy(media["photo"], tree / "day1" / "cam2" / "b.jpeg")
    (tree / "notes.txt").write_text("not media")
    assert cli("anonymize", tree, "-o", out_dir, "--image-format", "jpg", "-q") == 0
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert written == ["day1/a.jpg", "day1/cam2/b.jpg"]


def test_video_keeps_size_rate_audio_and_every_face_is_masked(media: dict, out_dir: Path) -> None:
    report = out_dir / "r.json"
    assert cli("anonymize", media["video"], "-o", out_dir, "--report", report, "-q") == 0
    result = out_dir / "walk.mp4"
    with av.open(str(media["video"])) as src, av.open(str(result)) as dst:
        assert (dst.streams.video[0].width, dst.streams.video[0].height) == (640, 360)
        assert dst.streams.video[0].average_rate == src.streams.video[0].average_rate
        assert dst.streams.video[0].codec_context.name == "h264"
        assert [s.type for s in dst.streams] == ["video", "audio"]
    source, masked = frames_of(media["video"]), frames_of(result)
    assert len(masked) == len(source)
    for index, (a, b) in enumerate(zip(source, masked, strict=True)):
        x1, y1, x2, y2 = media["video_boxes"][index]
        inner = (x1 + 15, y1 + 15, x2 - 15, y2 - 15)  # eyes, nose and mouth of the pasted head
        assert changed_share(a, b, inner) > 0.5, f"frame {index} shows the face"
    entry = json.loads(report.read_text())["files"][0]
    assert entry["frames"] == len(source)
    assert entry["failed_frames"] == 0
    assert entry["masks"]["face"] >= len(source)


@pytest.mark.parametrize("style", ["blur", "pixelate", "noise"])
def test_every_style_hides_the_face_on_video_frames_masked_in_yuv(
    media: dict, out_dir: Path, style: str
) -> None:
    assert cli("anonymize", media["video"], "-o", out_dir, "--style", style, "-q") == 0
    source, masked = frames_of(media["video"]), frames_of(out_dir / "walk.mp4")
    for index, (a, b) in enumerate(zip(source, masked, strict=True)):
        x1, y1, x2, y2 = media["video_boxes"][index]
        assert changed_share(a, b, (x1 + 15, y1 + 15, x2 - 15, y2 - 15)) > 0.5, (
            f"frame {index} shows the face"
        )


@pytest.mark.parametrize("style", ["blur", "pixelate", "noise"])
def test_every_style_hides_the_face(media: dict, out_dir: Path, style: str) -> None:
    assert cli("anonymize", media["photo"], "-o", out_dir, "--style", style, "-q") == 0
    original = np.asarray(Image.open(media["photo"]).convert("RGB")).astype(int)
    masked = np.asarray(Image.open(out_dir / "astronaut.png").convert("RGB")).astype(int)
    x1, y1, x2, y2 = 180, 60, 270, 170
    assert np.abs(original[y1:y2, x1:x2] - masked[y1:y2, x1:x2]).mean() > 10


def bad(args: list[object], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cityveil: ") and "Traceback" not in err
    return err


def test_missing_input(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in bad(["anonymize", tmp_path / "nope.mp4", "-o", out_dir], capsys)


def test_unknown_profile(media: dict, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = bad(["anonymize", media["photo"], "-o", out_dir, "--profile", "downtown"], capsys)
    assert "unknown profile 'downtown'" in err


def test_bad_profile_yaml(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "mine.yaml"
    broken.write_text("style: [blur\n")
    assert "not valid YAML" in bad(["anonymize", media["photo"], "-o", out_dir, "--profile", broken], capsys)
    unknown_key = tmp_path / "extra.yaml"
    unknown_key.write_text(
        "classes: {face: {threshold: 0.3, min_px: 10, margin: 0.1, strength: 1}}\n"
        "holdover_s: 1\ncolour: red\n"
    )
    assert "colour" in bad(["anonymize", media["photo"], "-o", out_dir, "--profile", unknown_key], capsys)


def test_custom_profile_yaml_is_applied(media: dict, tmp_path: Path, out_dir: Path) -> None:
    profile = tmp_path / "plaza.yaml"
    profile.write_text(
        "style: solid\nholdover_s: 0.5\n"
        "classes: {face: {threshold: 0.3, min_px: 16, margin: 0.1, strength: 1}}\n"
    )
    report = out_dir / "r.json"
    assert (
        cli("anonymize", media["photo"], "-o", out_dir, "--profile", profile, "--report", report, "-q") == 0
    )
    entry = json.loads(report.read_text())
    assert entry["profile"]["name"] == "plaza"
    assert set(entry["files"][0]["parameters"]["classes"]) == {"face"}


def test_truncated_and_corrupt_videos_write_nothing(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(media["video"]).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 1000)
    for broken in (cut, garbage):
        err = bad(["anonymize", broken, "-o", out_dir, "-q"], capsys)
        assert str(broken) in err
    assert not out_dir.exists() or not any(out_dir.rglob("*.mp4")), "no half-written output"


def test_truncated_image_writes_nothing(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "cut.jpg"
    Image.open(media["photo"]).convert("RGB").save(photo, quality=90)
    photo.write_bytes(photo.read_bytes()[:4000])
    assert "truncated" in bad(["anonymize", photo, "-o", out_dir, "-q"], capsys)
    assert not any(out_dir.rglob("*.*")) if out_dir.exists() else True


def test_bad_file_in_a_folder_does_not_stop_the_others(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "in"
    tree.mkdir()
    shutil.copy(media["photo"], tree / "good.png")
    (tree / "bad.png").write_bytes(b"not an image")
    bad(["anonymize", tree, "-o", out_dir, "-q"], capsys)
    assert [p.name for p in out_dir.iterdir()] == ["good.png"]


def test_console_script_exit_code_and_message(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "anonymize", tmp_path / "x.png", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "does not exist" in run.stderr


def test_camera_file_adds_privacy_zones_and_geometry(media: dict, tmp_path: Path, out_dir: Path) -> None:
    camera = tmp_path / "cam.yaml"
    camera.write_text(
        "geometry: {height_m: 3, tilt_deg: 80, hfov_deg: 60}\n"
        "privacy_zones: [[[0.0, 0.8], [0.3, 0.8], [0.3, 1.0], [0.0, 1.0]]]\n"
    )
    report = out_dir / "r.json"
    assert (
        cli(
            "anonymize",
            media["photo"],
            "-o",
            out_dir,
            "--style",
            "solid",
            "--report",
            report,
            "--camera",
            camera,
            "-q",
        )
        == 0
    )
    original = np.asarray(Image.open(media["photo"]).convert("RGB"))
    masked = np.asarray(Image.open(out_dir / "astronaut.png").convert("RGB"))
    zone = (masked[420:510, 5:150] != original[420:510, 5:150]).any(axis=2).mean()
    assert zone > 0.99, "the privacy zone is always masked"
    # A camera 3 m up looking almost straight down sees no face smaller than about 38 px.
    face_plan = json.loads(report.read_text())["files"][0]["parameters"]["classes"]["face"]
    assert face_plan["target_px"] > 20


def test_a_privacy_zone_is_painted_over_on_every_video_frame(
    media: dict, tmp_path: Path, out_dir: Path
) -> None:
    """Video is masked in YUV planes: the zone's luma and its chroma both take the solid grey."""
    camera = tmp_path / "cam.yaml"
    camera.write_text("privacy_zones: [[[0.05, 0.05], [0.45, 0.05], [0.45, 0.95], [0.05, 0.95]]]\n")
    assert cli("anonymize", media["video"], "-o", out_dir, "--style", "solid", "--camera", camera, "-q") == 0
    for frame in frames_of(out_dir / "walk.mp4"):
        h, w, _ = frame.shape
        inside = frame[int(0.1 * h) : int(0.9 * h), int(0.1 * w) : int(0.4 * w)].astype(int)
        assert np.abs(inside - np.array(SOLID_COLOUR)).max() <= 8


def test_bad_camera_file(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    camera = tmp_path / "cam.yaml"
    camera.write_text("geometry: {height_m: -3, tilt_deg: 10, hfov_deg: 60}\n")
    err = bad(["anonymize", media["photo"], "-o", out_dir, "--camera", camera], capsys)
    assert "geometry.height_m" in err
    camera.write_text("privacy_zones: [[[0, 0], [2, 0], [1, 1]]]\n")
    assert "outside 0..1" in bad(["anonymize", media["photo"], "-o", out_dir, "--camera", camera], capsys)


def test_demo_writes_anonymized_samples_and_a_report(tmp_path: Path) -> None:
    assert cli("demo", "-o", tmp_path) == 0
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["astronaut.png", "street.mp4"]
    files = json.loads((tmp_path / "report.json").read_text())["files"]
    assert all(f["masks"].get("face", 0) >= f["frames"] for f in files)


def test_usage_mistakes_are_refused_before_any_work(
    media: dict, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = media["photo"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is a file, not a folder" in bad(["anonymize", photo, "-o", a_file], capsys)
    assert "would overwrite its input" in bad(["anonymize", photo, "-o", Path(photo).parent], capsys)
    assert "cannot write the report" in bad(
        ["anonymize", photo, "-o", out_dir, "--report", a_file / "r.json"], capsys
    )
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert "CUDA" in bad(["anonymize", photo, "-o", out_dir, "--device", "cuda"], capsys)
    person = tmp_path / "people.yaml"
    person.write_text(
        "holdover_s: 1\nclasses: {person: {threshold: 0.3, min_px: 10, margin: 0.1, strength: 1}}\n"
    )
    assert "no detector masks 'person'" in bad(
        ["anonymize", photo, "-o", out_dir, "--profile", person], capsys
    )
    assert not out_dir.exists()
