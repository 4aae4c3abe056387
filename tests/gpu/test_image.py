"""Safe decoding: limits, corrupt input, EXIF orientation, resizing."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from modomo.gpu.image import ImageError, decode_image
from tests.gpu.images import jpeg_bytes, room_image

pytestmark = pytest.mark.gpu


def test_large_photo_is_resized_to_the_limit_keeping_its_aspect() -> None:
    decoded = decode_image(jpeg_bytes(room_image(4000, 3000)), 1280)
    assert decoded.size == (1280, 960)
    assert decoded.original_size == (4000, 3000)
    assert decoded.image.mode == "RGB"


def test_small_photo_is_kept_as_it_is() -> None:
    assert decode_image(jpeg_bytes(room_image(320, 240)), 1280).size == (320, 240)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the stored 400x200 is shown as 200x400
    data = jpeg_bytes(room_image(400, 200), exif=exif.tobytes())
    assert decode_image(data, 1280).size == (200, 400)


def test_transparent_png_becomes_rgb_on_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (50, 40), (255, 0, 0, 0)).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue(), 1280)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((10, 10)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not a photo", "not an image"),
        (jpeg_bytes(room_image())[:2000], "truncated or corrupt"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_bad_input_gives_a_readable_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data, 1280)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, format="PNG")  # compresses to a few KB
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(buffer.getvalue(), 1280, max_pixels=50_000_000)
