"""Factories for moderation tests: real rows and small real images, no analysis needed."""

from __future__ import annotations

import io
from typing import Any

import factory
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from detection.models import Face, Submission
from detection.tests import factories as detection_factories
from detection.tests.factories import UserFactory
from moderation.rules import REVIEW_CASES


def png_file(
    name: str, color: tuple[int, int, int] = (200, 120, 90), size: int = 32
) -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue(), name=name)


def moderators_group() -> Group:
    """The group migration 0001 creates; rebuilt if a transactional test flushed it."""
    group, _ = Group.objects.get_or_create(name=settings.MODERATORS_GROUP)
    app_label, codename = REVIEW_CASES.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return group


class ModeratorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"moderator{n}")

    @factory.post_generation
    def join_moderators(user: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            user.groups.add(moderators_group())


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class SubmissionFactory(detection_factories.SubmissionFactory):
    """A finished analysis; pass verdict/fake_probability to shape the case it opens."""

    overlay = factory.LazyFunction(lambda: png_file("overlay.png"))
    height = 32
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
