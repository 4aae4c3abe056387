"""Generated scene photos for the GPU-worker tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def room_image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A synthetic room: a floor, a wall, a window and a few furniture-like blocks."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height * 2 // 3] = (225, 215, 195)  # wall
    pixels[height * 2 // 3 :] = (140, 100, 60)  # wooden floor
    pixels[height // 8 : height // 3, width // 2 : width * 3 // 4] = (170, 200, 235)  # window
    for _ in range(4):
        x = int(rng.integers(0, width * 3 // 4))
        y = int(rng.integers(height // 3, height * 3 // 4))
        w = int(rng.integers(width // 10, width // 4))
        h = int(rng.integers(height // 10, height // 4))
        pixels[y : y + h, x : x + w] = rng.integers(0, 255, 3)
    noisy = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy)


def jpeg_bytes(image: Image.Image, **save: object) -> bytes:
    """``image`` encoded as a JPEG file."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **save)
    return buffer.getvalue()
