"""Regenerate `centerface_astronaut_256.npz`: real CenterFace head outputs for the decoder tests.

How it was made (run from the repository root, with the weights pulled into triton_models/):

    .venv/bin/python tests/unit/data/make_recorded.py

- image: `skimage.data.astronaut()` (512x512 RGB), resized to 256x256 with Pillow bilinear;
- input: RGB float32 0..255, NCHW [1,3,256,256], as CenterFaceDetector feeds the network;
- model: the float CenterFace (`RuntimeOptions(precision="fp32")`), the serving version;
- saved: the heads `heatmap` [1,1,64,64], `scale` [1,2,64,64] and `offset` [1,2,64,64] as float16, plus the
  model label, compressed. The unit tests load only this file: no model, no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from orchestrator.inference.onnx_backend import RuntimeOptions, load_model
from orchestrator.inference.repository import ModelRepository

SIZE = 256
OUT = Path(__file__).with_name("centerface_astronaut_256.npz")


def main() -> None:
    image = np.asarray(Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    blob = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    model = load_model(ModelRepository(), "face_centerface", RuntimeOptions(precision="fp32", threads=2))
    out = model.run(blob)
    np.savez_compressed(
        OUT,
        heatmap=out["heatmap"].astype(np.float16),
        scale=out["scale"].astype(np.float16),
        offset=out["offset"].astype(np.float16),
        model=np.array(model.label),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) from {model.label}")


if __name__ == "__main__":
    main()
