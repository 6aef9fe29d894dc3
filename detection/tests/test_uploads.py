"""Accepting uploads: what is stored, what is rejected, and when analysis is queued."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from PIL import Image, ImageFile

from detection import services
from detection.models import Submission
from detection.tests.factories import png_blank, png_chunk
from detection.validation import (
    RejectionCode,
    UploadLimits,
    UploadRejected,
    validate_image_upload,
)

pytestmark = pytest.mark.django_db

LIMITS = UploadLimits(
    max_bytes=10**7, max_pixels=10**7, max_aspect_ratio=20, max_decode_bytes=10**9
)


def encoded(image_format: str = "JPEG", size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A few hundred bytes that declare a huge PNG: zeros compress to almost nothing."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # only the first rows: never decoded
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def png_gray(width: int, height: int) -> bytes:
    """A complete black 8-bit grayscale PNG, built row by row: tiny however large it is."""
    return png_blank(width, height, bit_depth=8, colour_type=0)


@pytest.fixture
def uploader() -> User:
    return User.objects.create_user("uploader", password="pw-uploader-123")


@pytest.fixture
def enqueued() -> Any:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


def test_upload_stores_a_re_encoded_copy_and_queues_analysis_after_commit(
    uploader: User,
    enqueued: mock.MagicMock,
    private_media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = encoded("JPEG", comment=b"secret camera owner")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = services.submission_create(uploader=uploader, data=data, filename="holiday.jpg")
    assert enqueued.call_count == 0, "nothing is sent before the transaction commits"
    for callback in callbacks:
        callback()
    enqueued.assert_called_once_with(str(outcome.submission.id))

    submission = Submission.objects.get()
    assert outcome.created
    assert submission.status == Submission.Status.QUEUED
    assert (submission.width, submission.height, submission.format) == (64, 48, "JPEG")
    assert submission.byte_size == len(data)
    assert submission.original_filename == "holiday.jpg"
    stored = submission.image.open().read()
    assert stored != data
    assert b"secret camera owner" not in stored
    assert b"secret camera owner" not in submission.thumbnail.open().read()
    assert "holiday" not in str(submission.image.name)


def test_same_bytes_from_the_same_user_return_the_existing_submission(
    uploader: User, enqueued: mock.MagicMock, django_capture_on_commit_callbacks: Any
) -> None:
    data = encoded()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.submission_create(uploader=uploader, data=data, filename="a.jpg")
        second = services.submission_create(uploader=uploader, data=data, filename="b.jpg")
    assert second.submission.id == first.submission.id
    assert not second.created
    assert Submission.objects.count() == 1
    assert enqueued.call_count == 1


def test_same_bytes_again_return_the_existing_submission_without_decoding(
    uploader: User, enqueued: mock.MagicMock
) -> None:
    data = encoded()
    first = services.submission_create(uploader=uploader, data=data, filename="a.jpg")
    with mock.patch.object(services, "validate_image_upload") as validate:
        again = services.submission_create(uploader=uploader, data=data, filename="a.jpg")
    validate.assert_not_called()
    assert again.submission.id == first.submission.id
    assert not again.created


def test_same_bytes_from_another_user_are_a_separate_submission(
    uploader: User, enqueued: mock.MagicMock
) -> None:
    other = User.objects.create_user("other", password="pw-other-12345")
    data = encoded()
    services.submission_create(uploader=uploader, data=data, filename="a.jpg")
    services.submission_create(uploader=other, data=data, filename="a.jpg")
    assert Submission.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", RejectionCode.EMPTY_FILE),
        (b"GIF89a" + b"\x00" * 64, RejectionCode.UNSUPPORTED_FORMAT),
        (encoded("GIF"), RejectionCode.UNSUPPORTED_FORMAT),
        (encoded("BMP"), RejectionCode.UNSUPPORTED_FORMAT),
        (encoded("TIFF"), RejectionCode.UNSUPPORTED_FORMAT),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", RejectionCode.UNSUPPORTED_FORMAT),
        (b"<html><script>alert(1)</script></html>", RejectionCode.UNSUPPORTED_FORMAT),
        (encoded("JPEG", size=(512, 512))[:1500], RejectionCode.CORRUPT_IMAGE),
        (png_bomb(50_000, 50_000), RejectionCode.TOO_MANY_PIXELS),
        (png_bomb(9_000, 5_000), RejectionCode.TOO_MANY_PIXELS),
        (png_gray(65_600, 600), RejectionCode.SIDE_TOO_LONG),
        (png_gray(40_000_000, 1), RejectionCode.SIDE_TOO_LONG),
        (png_gray(3_000, 100), RejectionCode.EXTREME_ASPECT_RATIO),
        (png_gray(100, 3_000), RejectionCode.EXTREME_ASPECT_RATIO),
    ],
    ids=[
        "empty",
        "gif-header",
        "gif",
        "bmp",
        "tiff",
        "svg",
        "html",
        "truncated-jpeg",
        "png-bomb",
        "over-pixel-limit",
        "65600x600",
        "40000000x1",
        "wide-strip",
        "tall-strip",
    ],
)
def test_rejected_uploads_get_a_reason_and_store_nothing(
    uploader: User,
    enqueued: mock.MagicMock,
    private_media_root: Path,
    settings: Any,
    data: bytes,
    code: str,
) -> None:
    settings.UPLOAD_MAX_PIXELS = 40_000_000
    settings.UPLOAD_MAX_ASPECT_RATIO = 20
    with pytest.raises(UploadRejected) as rejection:
        services.submission_create(uploader=uploader, data=data, filename="x.jpg")
    assert rejection.value.code == code
    assert rejection.value.message
    assert not Submission.objects.exists()
    assert stored_files(private_media_root) == []
    enqueued.assert_not_called()


@pytest.mark.parametrize(
    ("data", "megabytes"),
    [
        (png_blank(6_324, 6_324, bit_depth=16, colour_type=0), 360),  # 88 KB in the probe
        (png_blank(7_300, 5_479, bit_depth=8, colour_type=6), 560),  # 40 MP with alpha
    ],
    ids=["16-bit-gray-40mp", "rgba-40mp"],
)
def test_image_that_would_need_too_much_memory_is_refused_before_decoding(
    uploader: User, private_media_root: Path, settings: Any, data: bytes, megabytes: int
) -> None:
    settings.UPLOAD_MAX_DECODE_BYTES = 320_000_000
    with (
        mock.patch.object(ImageFile.ImageFile, "load") as decode,
        pytest.raises(UploadRejected) as rejection,
    ):
        services.submission_create(uploader=uploader, data=data, filename="big.png")
    decode.assert_not_called()
    assert rejection.value.code == RejectionCode.DECODE_TOO_LARGE
    assert f"about {megabytes} MB" in rejection.value.message
    assert "320 MB" in rejection.value.message
    assert not Submission.objects.exists()
    assert stored_files(private_media_root) == []


def test_aspect_ratio_limit_comes_from_the_settings(
    uploader: User, enqueued: mock.MagicMock, settings: Any
) -> None:
    settings.UPLOAD_MAX_ASPECT_RATIO = 20
    assert services.submission_create(uploader=uploader, data=png_gray(2_000, 100), filename="")
    settings.UPLOAD_MAX_ASPECT_RATIO = 40
    assert services.submission_create(uploader=uploader, data=png_gray(3_000, 100), filename="")
    assert Submission.objects.count() == 2


def test_file_over_the_byte_limit_is_rejected(
    uploader: User, settings: Any, private_media_root: Path
) -> None:
    settings.UPLOAD_MAX_BYTES = 1000
    with pytest.raises(UploadRejected) as rejection:
        services.submission_create(uploader=uploader, data=encoded(size=(400, 400)), filename="x")
    assert rejection.value.code == RejectionCode.FILE_TOO_LARGE
    assert "0.001 MB" in rejection.value.message
    assert stored_files(private_media_root) == []


def test_exif_orientation_is_applied_before_storing() -> None:
    image = Image.new("RGB", (80, 40), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    validated = validate_image_upload(buffer.getvalue(), LIMITS)
    assert (validated.width, validated.height) == (40, 80)
    assert Image.open(io.BytesIO(validated.data)).getexif().get(0x0112) is None


def test_script_appended_to_a_png_is_not_stored() -> None:
    data = encoded("PNG") + b"<script>alert('xss')</script>"
    validated = validate_image_upload(data, LIMITS)
    assert b"<script>" not in validated.data
    assert validated.format == "PNG"


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("evil\x00name\n.jpg", "evilname.jpg"),
        ("", "upload"),
        ("...", "upload"),
    ],
)
def test_file_names_are_display_text_only(filename: str, shown: str) -> None:
    assert services.sanitize_filename(filename) == shown


def test_database_failure_leaves_no_files(
    uploader: User, private_media_root: Path, enqueued: mock.MagicMock
) -> None:
    with (
        mock.patch.object(Submission, "save", side_effect=RuntimeError("database went away")),
        pytest.raises(RuntimeError),
    ):
        services.submission_create(uploader=uploader, data=encoded(), filename="a.jpg")
    assert stored_files(private_media_root) == []
