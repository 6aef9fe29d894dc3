"""Decode any image Pillow can open into upright 8-bit RGB."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

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


class UnreadableImageError(ValueError):
    """The bytes are not an image Pillow can decode (or the file cannot be read)."""


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
        return _high_depth_to_rgb(image)
    if image.mode == "P":
        # Palette images may carry transparency in the palette or as a colour index.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "L" and "transparency" in image.info:
        image = image.convert("LA")
    if image.mode in _TRANSPARENT_MODES:
        rgba = image.convert("RGBA")
        # Transparent pixels are composited on white so that they read as background, not
        # as the arbitrary colour values stored under alpha 0.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's own convert() clips 16-bit values at 255, which turns most photos white;
    # scaling the full range down keeps the picture.
    values = np.asarray(image, dtype=np.float64)
    if image.mode in _SIXTEEN_BIT_MODES or values.max(initial=0.0) > 255:
        values = values / 257.0
    elif image.mode == "F" and values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
