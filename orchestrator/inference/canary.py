"""Validation of a model version before it may serve: it loads, runs canary frames, meets the output
contract, and masks the canary set about as well as the serving version does.

The canary set is generated, so every installation has it: scikit-image's astronaut face at sizes from
far to near on the sample street, and plate-like signs with dark text on a light plate. Masked recall is
measured as `cityveil eval` measures it (solid masks through the frame step; a box counts when 80% of it
changed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..core.detections import ObjectClass
from ..core.masks import MaskStyle
from ..core.policy import CameraContext
from ..core.profiles import BUILTIN_PROFILES
from ..dataplane.batch.images import IMAGE_PIXEL_BUDGET
from ..dataplane.frame_step import StreamAnonymizer
from ..evaluation import MaskScore, single_class_profile
from ..samples import background, face_patch
from .detectors import MODELS, Detector
from .onnx_backend import RuntimeOptions, load_model
from .repository import ModelRepository
from .version_config import spec_with_values

WIDTH, HEIGHT = 640, 360
FACE_SIZES = (20, 28, 40, 56, 80, 112, 160)  # pixels: far to near
PLATE_HEIGHTS = (14, 20, 28, 40)
CANARY_PROFILE = "public_space"
CONTRACT_THRESHOLD = 0.3


@dataclass(frozen=True)
class CanaryFrame:
    image: np.ndarray
    objects: list[dict[str, Any]]  # as in gt.jsonl: {"cls", "bbox_xywh"}


def _faces() -> list[CanaryFrame]:
    frames = []
    for k, size in enumerate(FACE_SIZES):
        image = background(WIDTH, HEIGHT)
        patch = face_patch(size)
        h, w = patch.shape[:2]
        x, y = 40 + (k * 83) % (WIDTH - w - 80), (HEIGHT - h) // 2
        image[y : y + h, x : x + w] = patch
        frames.append(CanaryFrame(image, [{"cls": "face", "bbox_xywh": [x, y, w, h]}]))
    return frames


def _plates() -> list[CanaryFrame]:
    frames = []
    for k, height in enumerate(PLATE_HEIGHTS):
        canvas = Image.fromarray(background(WIDTH, HEIGHT))
        width = height * 4
        x, y = 60 + k * 120, HEIGHT // 2
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((x, y, x + width, y + height), fill=(245, 245, 245), outline=(20, 20, 20))
        draw.text((x + height // 4, y + height // 8), "AB 12 CD", fill=(0, 0, 0), font_size=height * 0.75)
        frames.append(
            CanaryFrame(np.asarray(canvas).copy(), [{"cls": "plate", "bbox_xywh": [x, y, width, height]}])
        )
    return frames


def canary_set(object_class: ObjectClass) -> list[CanaryFrame]:
    return _faces() if object_class == ObjectClass.FACE else _plates()


@dataclass(frozen=True)
class Validation:
    ok: bool
    reason: str  # one sentence: why it was refused, or what it measured
    recall: float | None = None
    serving_recall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _detector(
    repository: ModelRepository, name: str, version: int, values: dict[str, str] | None = None
) -> Detector:
    """The version as the embedded engine would run it (fp32: the int8 copy is derived later, if at all),
    with its config values where it brings its own (else the config's)."""
    object_class = next(c for c, (model, _) in MODELS.items() if model == name)
    model = load_model(repository, name, RuntimeOptions(device="cpu", precision="fp32"), version)
    if values is not None:
        model = replace(model, spec=spec_with_values(model.spec, values))
    return MODELS[object_class][1](model)


def check_contract(detector: Detector, frames: list[CanaryFrame]) -> None:
    """Detections of the detector's class, on frames of the batch, as finite boxes with scores in 0..1."""
    found = detector.detect([f.image for f in frames], 1.0, CONTRACT_THRESHOLD)
    if not np.isfinite(found.boxes).all() or (found.boxes[:, 2:] < found.boxes[:, :2]).any():
        raise ValueError("its boxes are not finite (x1, y1, x2, y2) boxes")
    if ((found.scores < 0) | (found.scores > 1)).any():
        raise ValueError("its scores are not within 0..1")
    if (found.classes != detector.object_class).any() or (
        (found.frame_index < 0) | (found.frame_index >= len(frames))
    ).any():
        raise ValueError("its detections name another class or a frame outside the batch")


def masked_recall(detector: Detector, frames: list[CanaryFrame]) -> float:
    """Share of the canary objects that the frame step masks (solid) with this detector."""
    object_class = detector.object_class
    profile = single_class_profile(BUILTIN_PROFILES[CANARY_PROFILE], object_class)
    profile = profile.model_copy(update={"style": MaskStyle.SOLID})
    score = MaskScore()
    for frame in frames:
        context = CameraContext(profile, WIDTH, HEIGHT)
        stream = StreamAnonymizer(context, {object_class: detector}, pixel_budget=IMAGE_PIXEL_BUDGET)
        result = stream.process([frame.image.copy()])[0]
        if result.failed or result.image is None:
            raise ValueError("the frame step failed closed on a canary frame")
        score.add(frame.image, result.image, frame.objects, complete=True)
    return sum(score.hit.values()) / max(1, sum(score.total.values()))


def validate_version(
    repository: ModelRepository,
    name: str,
    version: int,
    serving: int,
    tolerance: float,
    values: dict[str, str] | None = None,
) -> Validation:
    """Refuses a version that does not load or run (with its config `values`, if any), breaks the output
    contract, or masks fewer canary objects than the serving version by more than `tolerance`."""
    try:
        candidate = _detector(repository, name, version, values)
        frames = canary_set(candidate.object_class)
        check_contract(candidate, frames)
        recall = masked_recall(candidate, frames)
    except Exception as exc:  # any failure to load or run is a refusal, with its reason
        return Validation(False, f"version {version} of {name} is refused: {exc}")
    if version == serving:
        return Validation(True, f"masked recall {recall:.3f} on the canary set", recall)
    serving_recall = masked_recall(_detector(repository, name, serving), frames)
    if recall < serving_recall - tolerance:
        reason = (
            f"version {version} of {name} is refused: masked recall {recall:.3f} on the canary set is "
            f"below the serving version's {serving_recall:.3f} by more than {tolerance}"
        )
        return Validation(False, reason, recall, serving_recall)
    return Validation(
        True, f"masked recall {recall:.3f} (serving: {serving_recall:.3f})", recall, serving_recall
    )
