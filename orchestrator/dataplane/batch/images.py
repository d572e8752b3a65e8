"""Still images: decode, anonymize as a one-frame stream, encode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ...atomic_files import atomic_output

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Network pixels a still image may use: small photos are upscaled (up to 2x) so distant faces are caught.
IMAGE_PIXEL_BUDGET = 1.5e6


class MediaError(ValueError):
    """An input that cannot be processed; the message is one sentence for the user."""


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(ImageOps.exif_transpose(img).convert("RGB"))
    except UnidentifiedImageError:
        raise MediaError(f"{path} is not a readable image") from None
    except Image.DecompressionBombError:
        raise MediaError(f"{path} has more pixels than an image this tool accepts") from None
    except OSError as exc:
        raise MediaError(f"{path} could not be decoded ({exc}); it may be truncated") from None


def write_image(pixels: np.ndarray, target: Path) -> None:
    options = {"quality": 92} if target.suffix.lower() in (".jpg", ".jpeg") else {}
    with atomic_output(target) as tmp:
        Image.fromarray(pixels).save(
            tmp, format=Image.registered_extensions()[target.suffix.lower()], **options
        )
