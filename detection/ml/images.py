"""Decode any image Pillow can open into upright 8-bit RGB."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

ImageSource = Image.Image | bytes | Path | str

# EXIF orientation → the transposition that shows the stored pixels upright.
_UPRIGHT_TURNS: dict[object, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# Bytes a pixel Pillow keeps: one for bilevel, gray and palette images, two for 16-bit gray,
# four for every other mode (RGB included: Pillow pads it to four).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1} | dict.fromkeys(_SIXTEEN_BIT_MODES, 2)
# libwebp decodes into canvases of its own and hands Pillow a copy (measured: up to 12 bytes
# a pixel on top of Pillow's four while decoding, 8 of them held while the image is open).
_DECODER_BYTES = {"WEBP": 12}


class UnreadableImageError(ValueError):
    """The bytes are not an image Pillow can decode (or the file cannot be read)."""


def decode_bytes_estimate(image: Image.Image) -> int:
    """The memory `load_rgb_image` holds at its peak for an opened, not yet decoded image.

    From the header alone: the decoded pixels, a turned copy of them (the EXIF orientation
    of a PNG may only be known once it is decoded) and the colour conversion's copies. The
    tests check it against the measured peak.
    """
    stored = _STORED_BYTES.get(image.mode, 4)
    decoder = _DECODER_BYTES.get(image.format or "", 0)
    per_pixel = decoder + 2 * stored + _conversion_bytes(image)
    return image.width * image.height * per_pixel


def _conversion_bytes(image: Image.Image) -> int:
    """Bytes per pixel that `_to_rgb` holds beyond its input, at its peak."""
    if image.mode == "RGB":
        return 0
    if image.mode in _SIXTEEN_BIT_MODES:
        return 5  # numpy's read (2) and the 8-bit values (1), then those and the RGB (4)
    if image.mode in ("I", "F"):
        return 13  # numpy's read and two float32 temporaries (4 each), the 8-bit values
    if image.mode in _TRANSPARENT_MODES or (
        image.mode in ("P", "L") and "transparency" in image.info
    ):
        rgba = 0 if image.mode == "RGBA" else 4
        return rgba + 4 + 2  # an RGBA copy, the RGB result, the alpha and its inverse
    return 4  # the RGB copy


def load_rgb_image(source: ImageSource) -> Image.Image:
    """Open `source`, rotate it by its EXIF orientation and return an RGB image.

    A PIL image passed in is never modified: a converted copy is returned when needed.
    """
    image = source if isinstance(source, Image.Image) else _open(source)
    image = _upright(image)
    return _to_rgb(image)


def _open(source: bytes | Path | str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError or SyntaxError depending on the
        # codec; callers only need to know that this input cannot be analysed.
        name = "image data" if isinstance(source, bytes) else str(source)
        raise UnreadableImageError(f"cannot decode {name}: {exc}") from exc
    return image


def _upright(image: Image.Image) -> Image.Image:
    turn = _UPRIGHT_TURNS.get(_orientation(image))
    if turn is None:
        return image
    turned = image.transpose(turn)
    # The turned copy keeps only what the colour conversion needs: its EXIF and XMP describe
    # the stored pixels, and reading their orientation again would turn the picture twice.
    turned.info = {key: value for key, value in image.info.items() if key == "transparency"}
    return turned


def _orientation(image: Image.Image) -> object:
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, ValueError, struct.error):
        # EXIF is metadata the uploader controls, and a block Pillow cannot parse says
        # nothing about the pixels: the picture is taken as stored instead of refused.
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return Image.fromarray(_eight_bit_gray(image)).convert("RGB")
    if image.mode in ("P", "L") and "transparency" in image.info:
        # A palette or gray image may mark palette entries or one gray value transparent.
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT_MODES:
        return _on_white(image)
    return image.convert("RGB")


def _on_white(image: Image.Image) -> Image.Image:
    """Transparent pixels composited on white, so that they read as background, not as the
    arbitrary colour values stored under alpha 0."""
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    rgb = rgba.convert("RGB")
    # White painted through the inverted alpha is compositing over white, without the
    # full-size RGBA background and result that Image.alpha_composite would allocate.
    rgb.paste((255, 255, 255), mask=ImageOps.invert(rgba.getchannel("A")))
    return rgb


def _eight_bit_gray(image: Image.Image) -> np.ndarray:
    """The values of a 16-bit, 32-bit or float gray image scaled into 0-255.

    Pillow's own convert() clips values above 255, which turns most 16-bit photos white.
    The arithmetic stays in the image's own integer or float32 type and writes straight into
    the 8-bit result: a float64 copy of a 40-megapixel image would be 320 MB.
    """
    values = np.asarray(image)
    gray = np.empty(values.shape, dtype=np.uint8)
    if image.mode in _SIXTEEN_BIT_MODES:
        np.right_shift(values, 8, out=gray, casting="unsafe")  # the high byte of each value
    elif image.mode == "I":
        scaled = values >> 8 if values.max(initial=0) > 255 else values
        np.clip(scaled, 0, 255, out=gray, casting="unsafe")
    else:  # "F", in 0-1, 0-255 or a 16-bit range
        peak = values.max(initial=0.0)
        scale = 255.0 if peak <= 1.0 else 1 / 257 if peak > 255 else 1.0
        np.clip(np.rint(values * np.float32(scale)), 0, 255, out=gray, casting="unsafe")
    return gray
