"""Turn uploaded bytes into a safe, freshly encoded image, or reject them with a reason.

Pure Pillow, no Django: the web form, the API and the fuzz tests all call
`validate_image_upload`. Nothing the uploader sent is ever stored as-is: the pixels are
decoded with an explicit format allow-list, after the size, the shape and the memory that
decoding would take are checked from the header; then they are rotated upright and encoded
into a new file, which drops EXIF/GPS data, comments, colour profiles and anything
appended after the image data. What the file said about itself (detection.provenance) and
the PDQ hash of its pixels (detection.pdq) are read on the way, before anything is dropped.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, UnidentifiedImageError

from detection.ml.images import decode_bytes_estimate, load_rgb_image
from detection.pdq import PdqHash, pdq_hash
from detection.provenance import Summary, read_provenance

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
    REQUEST_TOO_LARGE = "request_too_large"
    MALFORMED_REQUEST = "malformed_request"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    SIDE_TOO_LONG = "side_too_long"
    EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
    DECODE_TOO_LARGE = "decode_too_large"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"
    UNSUPPORTED_FORMAT = "unsupported_format"
    ANIMATED_IMAGE = "animated_image"
    CORRUPT_IMAGE = "corrupt_image"
    NO_VIDEO_STREAM = "no_video_stream"
    UNSUPPORTED_VIDEO_CODEC = "unsupported_video_codec"
    VIDEO_TOO_LONG = "video_too_long"
    TOO_MANY_FRAMES = "too_many_frames"
    CORRUPT_VIDEO = "corrupt_video"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    SERVICE_UNAVAILABLE = "service_unavailable"


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
    pdq: PdqHash  # of the decoded, upright pixels: what any re-encoding of them keeps
    provenance: Summary  # read from the original bytes, which are not kept


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    max_aspect_ratio: float  # long side / short side
    max_decode_bytes: int  # memory that decoding may take, estimated from the header


def validate_image_upload(data: bytes, limits: UploadLimits) -> ValidatedImage:
    if not data:
        raise UploadRejected(RejectionCode.EMPTY_FILE, "The file is empty.")
    if len(data) > limits.max_bytes:
        raise UploadRejected(RejectionCode.FILE_TOO_LARGE, too_large_message(limits.max_bytes))
    with warnings.catch_warnings():
        # Pillow only warns about decompression bombs below twice its own limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image_format, provenance, upright = _decode(data, limits)
    # Pillow's encoders copy comments, colour profiles and transparency from `info`. These
    # pixels were decoded here, so emptying it keeps nothing else, without another copy.
    upright.info = {}
    extension, content_type, options = ALLOWED_FORMATS[image_format]
    return ValidatedImage(
        data=_encode(upright, image_format, options),
        thumbnail=_thumbnail(upright),
        format=image_format,
        extension=extension,
        content_type=content_type,
        width=upright.width,
        height=upright.height,
        pdq=pdq_hash(upright),
        provenance=provenance,
    )


def _decode(data: bytes, limits: UploadLimits) -> tuple[str, Summary, Image.Image]:
    """The format, the provenance summary and the upright RGB pixels; the decoded original
    (with its metadata) is freed on return."""
    image = _open_allowed(data, limits)
    image_format = image.format or ""
    provenance = read_provenance(data, image, ALLOWED_FORMATS[image_format][1])
    return image_format, provenance, load_rgb_image(image)


def _open_allowed(data: bytes, limits: UploadLimits) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_FORMAT,
            "This is not a JPEG, PNG or WebP image or an MP4, WebM or MOV video we can read.",
        ) from None
    _check_size(*image.size, limits)
    needed = decode_bytes_estimate(image)
    if needed > limits.max_decode_bytes:
        raise UploadRejected(
            RejectionCode.DECODE_TOO_LARGE,
            f"This {image.width} x {image.height} image would need about "
            f"{needed / 1_000_000:.0f} MB of memory to decode (16-bit and transparent images "
            f"need more); the limit is {limits.max_decode_bytes / 1_000_000:g} MB.",
        )
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
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    # resize() with a reducing gap first shrinks by whole factors, so no full-size copy is
    # made (Image.thumbnail works in place, on a copy we would have to make first).
    scale = min(1.0, THUMBNAIL_SIZE[0] / image.width, THUMBNAIL_SIZE[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    thumbnail = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _too_many_pixels() -> UploadRejected:
    # Pillow found the image too large before we could read its size.
    return UploadRejected(RejectionCode.TOO_MANY_PIXELS, "The image has too many pixels.")
