"""Hostile uploads, generated here: each ends in a clear error or a sanitized stored copy.

Never a 500, never a stored original. The corpus goes through the web form and the API;
a bounded fuzz run checks the validation function itself.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from conftest import database_url_for_current_connection
from deepfake_site.services import api_token_rotate
from detection.models import Submission
from detection.tests.factories import UserFactory
from detection.validation import (
    RejectionCode,
    UploadLimits,
    UploadRejected,
    validate_image_upload,
)


def image_bytes(image_format: str, size: tuple[int, int] = (48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, format=image_format)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(side: int) -> bytes:
    """A few hundred bytes declaring a side x side grayscale PNG."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 8, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def psd_header() -> bytes:
    # Photoshop: signature, version 1, reserved, 3 channels, 32x32, 8 bits, RGB mode.
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 32, 32, 8, 3) + b"\x00" * 64


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", image_bytes("JPEG"))
    return buffer.getvalue()


HOSTILE: list[tuple[str, bytes, str]] = [
    ("truncated-jpeg", image_bytes("JPEG", (512, 512))[:1500], RejectionCode.CORRUPT_IMAGE),
    ("zero-bytes", b"", RejectionCode.EMPTY_FILE),
    ("png-bomb", png_bomb(60_000), RejectionCode.TOO_MANY_PIXELS),
    ("gif", image_bytes("GIF"), RejectionCode.UNSUPPORTED_FORMAT),
    ("tiff", image_bytes("TIFF"), RejectionCode.UNSUPPORTED_FORMAT),
    ("bmp", image_bytes("BMP"), RejectionCode.UNSUPPORTED_FORMAT),
    ("psd", psd_header(), RejectionCode.UNSUPPORTED_FORMAT),
    (
        "svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        RejectionCode.UNSUPPORTED_FORMAT,
    ),
    (
        "html",
        b"<!doctype html><script>alert(document.cookie)</script>",
        RejectionCode.UNSUPPORTED_FORMAT,
    ),
    ("zip", zip_archive(), RejectionCode.UNSUPPORTED_FORMAT),
]
HOSTILE_NAMES = ["../../../etc/passwd.jpg", "evil\r\nX-Injected: 1.jpg", "\x00\x1b[31mred.jpg"]


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[mock.MagicMock]:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


def nothing_stored(media_root: Path) -> bool:
    return not any(path.is_file() for path in media_root.rglob("*"))


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data", "code"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_file_is_refused_by_the_form_with_a_clear_message(
    client: Client, private_media_root: Path, name: str, data: bytes, code: str
) -> None:
    client.force_login(UserFactory.create())
    upload = SimpleUploadedFile(f"{name}.jpg", data, content_type="image/jpeg")
    response = client.post(reverse("detection:upload"), {"image": upload})
    assert response.status_code == 400
    errors = response.content.decode().split('id="upload-errors"')[1].split("</div>")[0]
    assert "<p>" in errors, "the reason is shown next to the form"
    assert not Submission.objects.exists()
    assert nothing_stored(private_media_root)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data", "code"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_file_is_refused_by_the_api_with_its_code(
    private_media_root: Path, name: str, data: bytes, code: str
) -> None:
    user = UserFactory.create()
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")
    upload = SimpleUploadedFile(f"{name}.jpg", data, content_type="image/jpeg")
    response = api.post(reverse("api:submission-list"), {"image": upload})
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Submission.objects.exists()
    assert nothing_stored(private_media_root)


@pytest.mark.django_db
@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_png_with_a_script_appended_and_a_hostile_name_is_stored_sanitized(
    client: Client, private_media_root: Path, filename: str
) -> None:
    client.force_login(UserFactory.create())
    polyglot = image_bytes("PNG") + b"<script>alert('stored xss')</script>"
    response = client.post(
        reverse("detection:upload"), {"image": SimpleUploadedFile(filename, polyglot)}
    )
    assert response.status_code == 302
    submission = Submission.objects.get()
    stored = [path for path in private_media_root.rglob("*") if path.is_file()]
    assert all(b"<script>" not in path.read_bytes() for path in stored)
    assert all(path.resolve().is_relative_to(private_media_root.resolve()) for path in stored)
    assert str(submission.id) in str(submission.image.name)
    assert submission.original_filename.isprintable()
    assert "/" not in submission.original_filename


def png_with_chunk(kind: bytes, body: bytes) -> bytes:
    """A valid 48x32 PNG with one extra chunk right after its header."""
    png = image_bytes("PNG")
    header_end = 8 + 8 + 13 + 4  # signature, then IHDR: length, type, 13 data bytes, CRC
    return png[:header_end] + png_chunk(kind, body) + png[header_end:]


# EXIF is metadata the uploader controls; a broken block says nothing about the pixels.
BROKEN_EXIF: list[tuple[str, bytes]] = [
    ("exif-chunk-not-tiff", png_with_chunk(b"eXIf", b"garbage!")),
    ("exif-chunk-cut-short", png_with_chunk(b"eXIf", b"MM\x00*\x00\x00")),
    (
        "raw-profile-not-hex",
        png_with_chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n      12\nnot hex at all\n"),
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data"), BROKEN_EXIF, ids=[row[0] for row in BROKEN_EXIF])
def test_png_with_broken_exif_is_accepted_by_the_form_as_it_looks(
    client: Client, name: str, data: bytes
) -> None:
    client.force_login(UserFactory.create())
    upload = SimpleUploadedFile(f"{name}.png", data, content_type="image/png")
    response = client.post(reverse("detection:upload"), {"image": upload})
    assert response.status_code == 302
    stored = Image.open(Submission.objects.get().image.open())
    assert stored.size == (48, 32), "not turned: the broken orientation is ignored"
    assert "exif" not in stored.info


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data"), BROKEN_EXIF, ids=[row[0] for row in BROKEN_EXIF])
def test_png_with_broken_exif_is_accepted_by_the_api(name: str, data: bytes) -> None:
    user = UserFactory.create()
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")
    upload = SimpleUploadedFile(f"{name}.png", data, content_type="image/png")
    response = api.post(reverse("api:submission-list"), {"image": upload})
    assert response.status_code == 202
    assert (response.json()["width"], response.json()["height"]) == (48, 32)


@given(data=st.binary(max_size=2048))
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzzed_bytes_are_either_accepted_as_a_fresh_image_or_rejected_with_a_code(
    data: bytes,
) -> None:
    check_validation_outcome(data)


STARTING_POINTS = [image_bytes("PNG"), image_bytes("JPEG"), image_bytes("WEBP")]


@given(
    original=st.sampled_from(STARTING_POINTS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
@hypothesis_settings(max_examples=300, deadline=None)
def test_mutated_valid_images_never_escape_validation(
    original: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    mutated = bytearray(original)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    check_validation_outcome(bytes(mutated[: max(cut, 8)]))


FUZZ_LIMITS = UploadLimits(
    max_bytes=1_000_000, max_pixels=4_000_000, max_aspect_ratio=20, max_decode_bytes=80_000_000
)
REJECTION_CODES = {
    RejectionCode.EMPTY_FILE,
    RejectionCode.FILE_TOO_LARGE,
    RejectionCode.UNSUPPORTED_FORMAT,
    RejectionCode.TOO_MANY_PIXELS,
    RejectionCode.SIDE_TOO_LONG,
    RejectionCode.EXTREME_ASPECT_RATIO,
    RejectionCode.DECODE_TOO_LARGE,
    RejectionCode.CORRUPT_IMAGE,
    RejectionCode.ANIMATED_IMAGE,
}


def check_validation_outcome(data: bytes) -> None:
    """Any other exception escaping here would be a 500 for the uploader."""
    try:
        accepted = validate_image_upload(data, FUZZ_LIMITS)
    except UploadRejected as error:
        rejection = error
    else:
        reopened = Image.open(io.BytesIO(accepted.data))
        assert reopened.format == accepted.format
        assert reopened.size == (accepted.width, accepted.height)
        return
    assert rejection.code in REJECTION_CODES
    assert rejection.message


@pytest.fixture
def gunicorn_server(
    start_gunicorn: Callable[..., str], settings: Any, private_media_root: Path
) -> str:
    return start_gunicorn(
        {
            "DATABASE_URL": database_url_for_current_connection(),
            "MEDIA_ROOT": str(private_media_root),
            "UPLOAD_MAX_BYTES": "100000",
            "SECRET_KEY": "gunicorn-test-key",
        }
    )


def multipart(boundary: str, payload: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_oversized_bodies_through_gunicorn_get_clear_errors_with_or_without_length(
    gunicorn_server: str, private_media_root: Path
) -> None:
    token = api_token_rotate(user=UserFactory.create())
    boundary = "faceproofboundary"
    body = multipart(boundary, b"\xff\xd8" + os.urandom(300_000))
    headers = {
        "Authorization": f"Token {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-Forwarded-Proto": "https",
    }

    def send(**kwargs: Any) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection(gunicorn_server, timeout=30)
        connection.request("POST", "/api/v1/submissions/", headers=headers, **kwargs)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    status, answer = send(body=body)
    assert (status, answer["code"]) == (413, RejectionCode.FILE_TOO_LARGE)
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))
    status, answer = send(body=chunks, encode_chunked=True)
    assert (status, answer["code"]) == (411, RejectionCode.LENGTH_REQUIRED)
    assert not Submission.objects.exists()
    assert nothing_stored(private_media_root)
