"""Turn uploaded bytes into a safe, freshly encoded image, or reject them with a reason.

Pure Pillow, no Django: the web form, the API and the fuzz tests all call
`validate_image_upload`. Nothing the uploader sent is ever stored as-is: the pixels are
decoded with an explicit format allow-list and a pixel cap, rotated upright, and encoded
into a new file, which drops EXIF/GPS data, comments, colour profiles and anything
appended after the image data.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, UnidentifiedImageError

from detection.ml.images import load_rgb_image

# Pillow format name → (stored extension, content type, encoder options).
ALLOWED_FORMATS: dict[str, tuple[str, str, dict[str, object]]] = {
    "JPEG": ("jpg", "image/jpeg", {"quality": 95, "subsampling": 0}),
    "PNG": ("png", "image/png", {"compress_level": 6}),
    "WEBP": ("webp", "image/webp", {"quality": 95, "method": 4}),
}
THUMBNAIL_SIZE = (320, 320)
# The longest side a JPEG can declare: only a PNG can be longer, and no camera makes one.
MAX_SIDE = 65_535


class RejectionCode(StrEnum):
    """Why an upload was refused, for machines (API clients, tests); people get a message."""

    LENGTH_REQUIRED = "length_required"
    RATE_LIMITED = "throttled"
    MISSING_IMAGE = "missing_image"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    SIDE_TOO_LONG = "side_too_long"
    EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
    UNSUPPORTED_FORMAT = "unsupported_format"
    ANIMATED_IMAGE = "animated_image"
    CORRUPT_IMAGE = "corrupt_image"


class UploadRejected(Exception):
    """The upload cannot be accepted; `code` is for machines, the message for people."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_large_message(max_bytes: int) -> str:
    return f"The file is larger than the {max_bytes / 1_000_000:g} MB limit."


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes  # the re-encoded image: the only bytes ever stored
    thumbnail: bytes  # a small JPEG for lists and queues
    format: str
    extension: str
    content_type: str
    width: int
    height: int
    sha256: str  # of the bytes as uploaded: the same file uploaded twice has the same hash
    byte_size: int  # as uploaded


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    max_aspect_ratio: float  # long side / short side


def validate_image_upload(data: bytes, limits: UploadLimits) -> ValidatedImage:
    if not data:
        raise UploadRejected(RejectionCode.EMPTY_FILE, "The file is empty.")
    if len(data) > limits.max_bytes:
        raise UploadRejected(RejectionCode.FILE_TOO_LARGE, too_large_message(limits.max_bytes))
    with warnings.catch_warnings():
        # Pillow only warns about decompression bombs below twice its own limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open_allowed(data, limits)
        upright = load_rgb_image(image)
    extension, content_type, options = ALLOWED_FORMATS[image.format or ""]
    return ValidatedImage(
        data=_encode(upright, image.format or "", options),
        thumbnail=_thumbnail(upright),
        format=image.format or "",
        extension=extension,
        content_type=content_type,
        width=upright.width,
        height=upright.height,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )


def _open_allowed(data: bytes, limits: UploadLimits) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT, "This is not a JPEG, PNG or WebP image we can read."
        ) from None
    _check_size(*image.size, limits)
    if getattr(image, "n_frames", 1) > 1:
        raise UploadRejected(RejectionCode.ANIMATED_IMAGE, "Animated images are not supported.")
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise UploadRejected(
            RejectionCode.CORRUPT_IMAGE, "The image is damaged or incomplete and cannot be decoded."
        ) from None
    return image


def _check_size(width: int, height: int, limits: UploadLimits) -> None:
    """Refuse, from the header alone, a size the pipeline cannot or should not decode."""
    if width * height > limits.max_pixels:
        raise UploadRejected(
            RejectionCode.TOO_MANY_PIXELS,
            f"The image is {width} x {height} pixels; the limit is "
            f"{limits.max_pixels / 1_000_000:g} megapixels.",
        )
    if max(width, height) > MAX_SIDE:
        raise UploadRejected(
            RejectionCode.SIDE_TOO_LONG,
            f"The image is {width} x {height} pixels; no side may be longer than "
            f"{MAX_SIDE:,} pixels.",
        )
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise UploadRejected(
            RejectionCode.EXTREME_ASPECT_RATIO,
            f"The image is {width} x {height} pixels; its long side may be at most "
            f"{limits.max_aspect_ratio:g} times its short side.",
        )


def _encode(image: Image.Image, image_format: str, options: dict[str, object]) -> bytes:
    # A new image from the raw pixels: Pillow's encoders copy comments and colour profiles
    # from the source image's `info`, so saving the decoded image itself would keep them.
    pixels_only = Image.frombytes(image.mode, image.size, image.tobytes())
    buffer = io.BytesIO()
    pixels_only.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    thumbnail = image.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _too_many_pixels() -> UploadRejected:
    # Pillow found the image too large before we could read its size.
    return UploadRejected(RejectionCode.TOO_MANY_PIXELS, "The image has too many pixels.")
