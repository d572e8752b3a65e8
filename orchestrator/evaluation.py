"""`cityveil eval`: masked recall by object size and over-masking on a `gt.jsonl` set.

The definitions are those of the shared black-box metric (maskeval): masks are solid so every masked pixel
changes; a ground-truth box counts as masked when at least 80% of its pixels changed; recall is bucketed by
the box's short side; over-masking is the share of pixels changed outside the boxes grown 1.5x, on images
whose ground truth is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .core.detections import ObjectClass
from .core.policy import CameraContext
from .core.profiles import Profile
from .dataplane.batch.images import IMAGE_PIXEL_BUDGET, MediaError, read_image
from .dataplane.embedded import EmbeddedEngine
from .inference.onnx_backend import RuntimeOptions

COVER = 0.8
BUCKETS = ((0, 16, "<16px"), (16, 32, "16-32px"), (32, 10**9, ">=32px"))


class EvalError(ValueError):
    pass


def gt_records(set_dir: Path, cls: str) -> list[dict[str, Any]]:
    gt = set_dir / "gt.jsonl"
    if not gt.is_file():
        raise EvalError(f"{set_dir} has no gt.jsonl")
    records = []
    for number, line in enumerate(gt.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise EvalError(f"{gt} line {number} is not JSON") from None
        record["objects"] = [
            o
            for o in record.get("objects", [])
            if o.get("cls") == cls
            and not o.get("attrs", {}).get("ignore")
            and not o.get("attrs", {}).get("invalid")
        ]
        if record["objects"]:
            records.append(record)
    return records


class MaskScore:
    """Accumulates hits per size bucket and over-masked pixels, image by image."""

    def __init__(self) -> None:
        self.hit = {b[2]: 0 for b in BUCKETS}
        self.total = {b[2]: 0 for b in BUCKETS}
        self.over_changed = 0
        self.over_total = 0
        self.images = 0

    def add(
        self, original: np.ndarray, masked: np.ndarray, objects: list[dict[str, Any]], complete: bool
    ) -> None:
        self.images += 1
        changed = (original != masked).any(axis=2)
        h, w = changed.shape
        outside = np.ones_like(changed)
        for obj in objects:
            x, y, bw, bh = obj["bbox_xywh"]
            x1, y1 = int(max(0, x)), int(max(0, y))
            x2, y2 = int(min(w, np.ceil(x + bw))), int(min(h, np.ceil(y + bh)))
            if x2 <= x1 or y2 <= y1:
                continue
            bucket = next(b[2] for b in BUCKETS if b[0] <= min(bw, bh) < b[1])
            self.total[bucket] += 1
            self.hit[bucket] += bool(changed[y1:y2, x1:x2].mean() >= COVER)
            cx, cy = x + bw / 2, y + bh / 2
            outside[
                int(max(0, cy - 0.75 * bh)) : int(min(h, cy + 0.75 * bh)),
                int(max(0, cx - 0.75 * bw)) : int(min(w, cx + 0.75 * bw)),
            ] = False
        if complete:
            self.over_changed += int((changed & outside).sum())
            self.over_total += int(outside.sum())

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": self.images}
        for _, _, name in BUCKETS:
            out[f"recall_{name}"] = round(self.hit[name] / self.total[name], 4) if self.total[name] else None
            out[f"n_{name}"] = self.total[name]
        big = [b[2] for b in BUCKETS if b[0] >= 16]
        out["recall_>=16px"] = round(
            sum(self.hit[k] for k in big) / max(1, sum(self.total[k] for k in big)), 4
        )
        out["overmask_share"] = round(self.over_changed / self.over_total, 5) if self.over_total else None
        return out


def single_class_profile(profile: Profile, object_class: ObjectClass) -> Profile:
    """The profile masking only `object_class`: what is scored is what that class's detector found."""
    policy = profile.policy_for(object_class)
    if policy is None:
        raise EvalError(f"profile {profile.name} does not mask {object_class.name.lower()}")
    return profile.model_copy(update={"classes": {object_class.name.lower(): policy}})


def evaluate_set(
    set_dir: Path,
    cls: str,
    profile: Profile,
    options: RuntimeOptions | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run the engine over the set's images (only `cls` masked, solid fill) and score the masks."""
    object_class = ObjectClass.parse(cls)
    profile = single_class_profile(profile, object_class)
    records = gt_records(set_dir, cls)[:limit]
    if not records:
        raise EvalError(f"{set_dir}/gt.jsonl has no {cls} objects")
    engine = EmbeddedEngine(options=options, classes=[object_class])
    score = MaskScore()
    for record in records:
        try:
            original = read_image(set_dir / record["image"])
        except MediaError as exc:
            raise EvalError(str(exc)) from None
        h, w = original.shape[:2]
        stream = engine.stream(CameraContext(profile, w, h), pixel_budget=IMAGE_PIXEL_BUDGET)
        masked = stream.process([original.copy()])[0].image
        score.add(
            original,
            masked if masked is not None else np.zeros_like(original),
            record["objects"],
            bool(record.get("complete")),
        )
    models = {c.name.lower(): d.label for c, d in engine.detectors.items()}
    return {"set": str(set_dir), "cls": cls, "profile": profile.name, "models": models, **score.result()}
