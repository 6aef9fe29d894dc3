"""Test data: users and submissions with real (tiny) stored images, no analysis needed."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from typing import Any

import factory
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from detection.models import Face, Submission


def png_bytes(color: str = "gray", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_blank(width: int, height: int, *, bit_depth: int, colour_type: int) -> bytes:
    """A complete all-zero PNG, built row by row: tiny however large it is.

    Any PNG pixel format: colour type 0 is gray, 2 RGB, 6 RGBA; bit depth 8 or 16.
    """
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * bit_depth // 8)  # filter byte, then the pixels
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * height, 9))
        + png_chunk(b"IEND", b"")
    )


def stored_png(name: str, color: str = "gray") -> str:
    return default_storage.save(name, ContentFile(png_bytes(color)))


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-123")


class SubmissionFactory(factory.django.DjangoModelFactory[Submission]):
    class Meta:
        model = Submission

    id = factory.LazyFunction(uuid.uuid4)
    uploader = factory.SubFactory(UserFactory)
    original_filename = factory.Sequence(lambda n: f"photo-{n}.png")
    sha256 = factory.LazyFunction(lambda: uuid.uuid4().hex * 2)
    byte_size = 1234
    width = 32
    height = 24
    format = "PNG"
    image = factory.LazyAttribute(lambda s: stored_png(f"submissions/{s.id}/image.png"))
    thumbnail = factory.LazyAttribute(lambda s: stored_png(f"submissions/{s.id}/thumbnail.png"))


def make_analysed(
    submission: Submission,
    *,
    fake_probabilities: tuple[float, ...] = (0.9,),
    verdict: str = "fake",
    trained: bool = False,
    **fields: Any,
) -> Submission:
    """Give a submission stored results, as a finished analysis would."""
    folder = f"submissions/{submission.id}"
    for index, probability in enumerate(fake_probabilities, start=1):
        Face.objects.create(
            submission=submission,
            index=index,
            box_x1=1,
            box_y1=2,
            box_x2=20,
            box_y2=22,
            detection_probability=0.99,
            fake_probability=probability,
            crop=stored_png(f"{folder}/faces/{index}-crop.png"),
            heatmap=stored_png(f"{folder}/faces/{index}-heatmap.png", "red"),
        )
    submission.overlay.name = stored_png(f"{folder}/overlay.png")
    submission.status = Submission.Status.DONE if fake_probabilities else Submission.Status.NO_FACE
    submission.verdict = verdict if fake_probabilities else ""
    submission.fake_probability = max(fake_probabilities) if fake_probabilities else None
    submission.model_version = "0123456789ab"
    submission.model_trained = trained
    submission.timings_ms = {"total": 321.0}
    for name, value in fields.items():
        setattr(submission, name, value)
    submission.save()
    return submission
