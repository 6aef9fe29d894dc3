"""Decoding: every image Pillow reads becomes upright 8-bit RGB, or a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detection.ml.images import UnreadableImageError, load_rgb_image


def _encoded(image: Image.Image, format: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "1", "LA"])
def test_common_modes_decode_to_rgb(mode: str) -> None:
    source = Image.new("RGB", (40, 30), (200, 120, 40)).convert(mode)
    image = load_rgb_image(_encoded(source, "TIFF" if mode == "CMYK" else "PNG"))
    assert image.mode == "RGB"
    assert image.size == (40, 30)


def test_sixteen_bit_grayscale_keeps_its_brightness() -> None:
    # Pillow's own convert("RGB") would clip 32768 to 255 (white); scaling keeps mid-gray.
    pixels = np.full((30, 40), 32768, dtype=np.uint16)
    image = load_rgb_image(_encoded(Image.fromarray(pixels)))
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == [128, 128, 128]


def test_transparent_pixels_become_white() -> None:
    source = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    source.putpixel((0, 0), (255, 0, 0, 255))
    image = load_rgb_image(_encoded(source))
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (255, 0, 0)


def test_palette_with_transparency_becomes_white_where_transparent() -> None:
    source = Image.new("P", (10, 10), 0)
    source.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    source.putpixel((0, 0), 1)
    image = load_rgb_image(_encoded(source, transparency=0))
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 255, 0)


def test_exif_orientation_turns_the_photo_upright() -> None:
    upright = Image.new("RGB", (60, 20), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    image = load_rgb_image(_encoded(stored, exif=exif.tobytes()))
    assert image.size == (60, 20)
    assert image.getpixel((2, 10)) == (255, 255, 255)
    assert image.getpixel((50, 10)) == (0, 0, 0)


@pytest.mark.parametrize(
    "broken",
    [b"garbage!", b"MM\x00*\x00\x00"],
    ids=["not-tiff", "cut-short"],
)
def test_broken_exif_is_ignored_and_the_picture_kept_as_stored(broken: bytes) -> None:
    image = load_rgb_image(_encoded(Image.new("RGB", (60, 20), (10, 20, 30)), exif=broken))
    assert image.size == (60, 20)
    assert image.getpixel((0, 0)) == (10, 20, 30)


def test_turned_picture_is_not_turned_again() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    once = load_rgb_image(_encoded(Image.new("RGB", (60, 20)), exif=exif.tobytes()))
    assert load_rgb_image(once).size == once.size == (20, 60)


def test_image_passed_in_is_not_modified() -> None:
    source = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    load_rgb_image(source)
    assert source.mode == "RGBA"


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", _encoded(Image.new("RGB", (64, 64)), "JPEG")[:200]]
)
def test_unreadable_bytes_raise_unreadable_image_error(data: bytes) -> None:
    with pytest.raises(UnreadableImageError, match="cannot decode"):
        load_rgb_image(data)
