"""Safe decoding of scene photos: limits, EXIF orientation, RGB, resize.

Every way an upload can be bad ends in :class:`ImageError` with a sentence a person can act
on, which the worker records as the scene's ``scene_failed`` error.
"""

from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from modomo.domain.failures import InputError

MAX_BYTES = 64 * 1024 * 1024
"""Largest upload decoded (a 64 MiB JPEG is far beyond any real room photo)."""
MAX_PIXELS = 80_000_000
"""Largest pixel count decoded; above it a file is treated as a decompression bomb."""


class ImageError(InputError):
    """The scene's original cannot be used as an image (an input error: never retried)."""


@dataclass(frozen=True, slots=True)
class SceneImage:
    """A decoded scene: RGB, upright, at most ``resize_max_px`` on its long side."""

    image: Image.Image
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` after resizing."""
        width, height = self.image.size
        return int(width), int(height)


def decode_image(
    data: bytes, resize_max_px: int = 1280, *, max_pixels: int = MAX_PIXELS
) -> SceneImage:
    """Decode ``data`` into an upright RGB image no longer than ``resize_max_px`` on a side.

    Raises:
        ImageError: empty or oversized input, not an image, truncated or corrupt data, a
            pixel count over ``max_pixels`` (decompression bomb), or a bad resize limit.
    """
    if resize_max_px < 16:
        raise ImageError(f"resize_max_px must be at least 16, got {resize_max_px}")
    if not data:
        raise ImageError("the original is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the original is {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    try:
        with warnings.catch_warnings():
            # Pillow warns before it raises on bombs; the limit is checked below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _pillow_open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"the image is {width}x{height} = {width * height} pixels, over the "
                    f"{max_pixels}-pixel limit (a decompression bomb or a panorama)"
                )
            if width < 1 or height < 1:
                raise ImageError(f"the image has no pixels ({width}x{height})")
            # Reduce while decoding where the format allows (JPEG DCT scaling): a 6000 px
            # photo then costs a fraction of a full decode.
            if max(width, height) > 2 * resize_max_px:
                image.draft("RGB", (resize_max_px, resize_max_px))
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the original is not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image is a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"the image is truncated or corrupt: {exc}") from None
    original = (width, height)
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = _to_rgb(image)
    if max(image.size) > resize_max_px:
        image = image.copy()
        image.thumbnail((resize_max_px, resize_max_px), Image.Resampling.LANCZOS)
    return SceneImage(image=image, original_size=original)


def _pillow_open(fp: io.BytesIO) -> Image.Image:
    """Pillow's own ``Image.open``.

    Importing ultralytics replaces ``Image.open`` process-wide with a wrapper that, on a
    file Pillow cannot identify, tries to install and import pi-heif, so a non-image would
    fail with ``ModuleNotFoundError`` instead of a clear message.
    """
    patches = sys.modules.get("ultralytics.utils.patches")
    opener = getattr(patches, "_image_open", Image.open)
    image: Image.Image = opener(fp)
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent areas composited onto white rather than turned black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
