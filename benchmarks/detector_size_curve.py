"""How small an object can each detector find? Detection rate by the object's size at the network input.

This is the measurement behind `cityveil_reliable_min_px` in each model's config.pbtxt: the adaptive policy
scales frames so that the smallest object a profile must catch reaches that size. An object counts as found
when a detection overlaps its ground-truth box with IoU >= 0.3.

    .venv/bin/python benchmarks/detector_size_curve.py --set ../shared/eval/facemask_dev --cls face
    .venv/bin/python benchmarks/detector_size_curve.py --set ../shared/eval/roboflow_plates --cls plate
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from orchestrator.core.boxes import iou_matrix
from orchestrator.core.detections import ObjectClass
from orchestrator.core.profiles import BUILTIN_PROFILES
from orchestrator.dataplane.batch.images import read_image
from orchestrator.dataplane.embedded import EmbeddedEngine
from orchestrator.evaluation import gt_records

EDGES = (0, 8, 10, 12, 16, 24, 32, 10**6)
FOUND_IOU = 0.3


def size_curve(set_dir: Path, cls: str, scales: list[float], threshold: float) -> None:
    object_class = ObjectClass.parse(cls)
    detector = EmbeddedEngine(classes=[object_class]).detectors[object_class]
    records = gt_records(set_dir, cls)
    images = [read_image(set_dir / r["image"]) for r in records]
    for scale in scales:
        found: dict[int, list[bool]] = {}
        for record, image in zip(records, images, strict=True):
            boxes = detector.detect([image], scale, threshold).boxes
            for obj in record["objects"]:
                x, y, w, h = obj["bbox_xywh"]
                bucket = int(np.searchsorted(EDGES, min(w, h) * scale, side="right")) - 1
                truth = np.array([[x, y, x + w, y + h]], dtype=np.float32)
                found.setdefault(bucket, []).append(
                    bool(len(boxes)) and iou_matrix(truth, boxes).max() >= FOUND_IOU
                )
        cells = [
            f"{EDGES[b]}-{EDGES[b + 1]}px {np.mean(v):.2f} (n={len(v)})" for b, v in sorted(found.items())
        ]
        print(f"scale {scale}: " + ", ".join(cells).replace(f"-{10**6}px", "+px"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--cls", choices=["face", "plate"], default="face")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument(
        "--threshold", type=float, help="detector score (default: the public_space profile's)"
    )
    args = parser.parse_args()
    policy = BUILTIN_PROFILES["public_space"].policy_for(ObjectClass.parse(args.cls))
    assert policy is not None
    size_curve(args.set, args.cls, args.scales, args.threshold or policy.threshold)


if __name__ == "__main__":
    main()
