"""Regenerate the recorded model outputs for the decoder tests.

How they were made (run from the repository root, with the weights pulled into triton_models/):

    .venv/bin/python tests/unit/data/make_recorded.py

Both use the float model (`RuntimeOptions(precision="fp32")`), the serving version, and store its outputs as
float16 with the model label, compressed. The unit tests load only these files: no model, no network.

`centerface_astronaut_256.npz`, the face detector:
- image: `skimage.data.astronaut()` (512x512 RGB), resized to 256x256 with Pillow bilinear;
- input: RGB float32 0..255, NCHW [1,3,256,256], as CenterFaceDetector feeds the network;
- saved: the heads `heatmap` [1,1,64,64], `scale` [1,2,64,64] and `offset` [1,2,64,64].

`ppocr_plate_256x256.npz`, the licence-plate (PP-OCR DB text) detector:
- image: synthetic, 256x256 RGB, mid-grey; a white rounded 160x40 plate with a black border, centred, and
  "CV 2026 EU" in black, centred on it, in Pillow's default font at size 28 (characters ~19 px tall).
  The canvas is square, not 256x128, so that the plate is a realistic share of the frame: PlateTextDetector
  drops regions whose grown box is over 1/4 of the frame height, and the grown box of 20 px text is ~41 px;
- input: `PlateTextDetector.prepare([image], 1.0)`, as the detector feeds the network (BGR, scaled to -1..1);
- saved: `probability` [1,1,256,256], the `plate` rectangle and the `text` box (`ImageDraw.textbbox`),
  both x1, y1, x2, y2 in image pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from orchestrator.inference.detectors import PlateTextDetector
from orchestrator.inference.onnx_backend import RuntimeOptions, load_model
from orchestrator.inference.repository import ModelRepository

HERE = Path(__file__).parent
FACE_SIZE = 256
PLATE_IMAGE_WH = (256, 256)
PLATE_WH = (160, 40)
PLATE_TEXT = "CV 2026 EU"


def record(out: Path, model_name: str, blob: np.ndarray, heads: tuple[str, ...], **extra: np.ndarray) -> None:
    """Run the float model on one input and save the named outputs as float16, with `extra` and the label."""
    model = load_model(ModelRepository(), model_name, RuntimeOptions(precision="fp32", threads=2))
    outputs = model.run(blob)
    saved = {name: outputs[name].astype(np.float16) for name in heads}
    np.savez_compressed(out, **saved, **extra, model=np.array(model.label))
    print(f"wrote {out} ({out.stat().st_size} bytes) from {model.label}")


def record_centerface() -> None:
    size = (FACE_SIZE, FACE_SIZE)
    image = np.asarray(Image.fromarray(data.astronaut()).resize(size, Image.Resampling.BILINEAR))
    blob = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    record(HERE / "centerface_astronaut_256.npz", "face_centerface", blob, ("heatmap", "scale", "offset"))


def plate_image() -> tuple[np.ndarray, tuple[int, ...], tuple[float, ...]]:
    """The synthetic plate scene; returns the RGB image, the plate rectangle and the text box."""
    (width, height), (plate_w, plate_h) = PLATE_IMAGE_WH, PLATE_WH
    image = Image.new("RGB", PLATE_IMAGE_WH, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    cx, cy = width // 2, height // 2
    plate = (cx - plate_w // 2, cy - plate_h // 2, cx + plate_w // 2, cy + plate_h // 2)
    draw.rounded_rectangle(plate, radius=6, fill="white", outline="black", width=2)
    font = ImageFont.load_default(size=28)
    draw.text((cx, cy), PLATE_TEXT, fill="black", font=font, anchor="mm")
    text = draw.textbbox((cx, cy), PLATE_TEXT, font=font, anchor="mm")
    return np.asarray(image), plate, text


def record_plate() -> None:
    image, plate, text = plate_image()
    blob, input_scale = PlateTextDetector.prepare([image], 1.0)
    assert input_scale == (1.0, 1.0), input_scale
    record(
        HERE / "ppocr_plate_256x256.npz",
        "plate_ppocr_det",
        blob,
        ("probability",),
        plate=np.array(plate, np.float32),
        text=np.array(text, np.float32),
    )


if __name__ == "__main__":
    record_centerface()
    record_plate()
