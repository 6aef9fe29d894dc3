"""Factories for moderation tests: real rows and small real images, no analysis needed."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import factory
from django.contrib.auth.models import Group, Permission, User
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from detection.models import Face, Submission
from moderation.permissions import REVIEW_CASES


def png_file(
    name: str, color: tuple[int, int, int] = (200, 120, 90), size: int = 32
) -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue(), name=name)


def moderators_group() -> Group:
    """The group migration 0001 creates; rebuilt if a transactional test flushed it."""
    group, _ = Group.objects.get_or_create(name="moderators")
    app_label, codename = REVIEW_CASES.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return group


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"uploader{n}")
    password = factory.django.Password("a-long-enough-passphrase-42")


class ModeratorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"moderator{n}")

    @factory.post_generation
    def join_moderators(user: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            user.groups.add(moderators_group())


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class SubmissionFactory(factory.django.DjangoModelFactory[Submission]):
    """A finished analysis; pass verdict/fake_probability to shape the case it opens."""

    class Meta:
        model = Submission

    uploader = factory.SubFactory(UserFactory)
    image = factory.LazyFunction(lambda: png_file("image.png"))
    thumbnail = factory.LazyFunction(lambda: png_file("thumbnail.png", size=16))
    overlay = factory.LazyFunction(lambda: png_file("overlay.png"))
    original_filename = factory.Sequence(lambda n: f"photo-{n}.jpg")
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"image-{n}".encode()).hexdigest())
    byte_size = 1234
    width = 32
    height = 32
    format = "PNG"
    status = Submission.Status.DONE
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)
    model_version = "inception-resnet-v1@test"
    model_trained = True
    verdict = Submission.Verdict.FAKE
    fake_probability = 0.9


class FaceFactory(factory.django.DjangoModelFactory[Face]):
    class Meta:
        model = Face

    submission = factory.SubFactory(SubmissionFactory)
    index = factory.Sequence(lambda n: n)
    box_x1 = 2.0
    box_y1 = 3.0
    box_x2 = 20.0
    box_y2 = 24.0
    detection_probability = 0.99
    fake_probability = 0.9
    crop = factory.LazyFunction(lambda: png_file("crop.png"))
    heatmap = factory.LazyFunction(lambda: png_file("heatmap.png", color=(255, 0, 0)))
