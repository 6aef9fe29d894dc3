"""Moderation fixtures: the four kinds of visitor and flagged submissions with their cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from detection.models import Submission
from moderation import services
from moderation.models import ReviewCase
from moderation.tests.factories import (
    FaceFactory,
    ModeratorFactory,
    StaffFactory,
    SubmissionFactory,
    UserFactory,
)


@pytest.fixture
def uploader(db: None) -> User:
    return UserFactory.create(username="uploader")


@pytest.fixture
def moderator(db: None) -> User:
    return ModeratorFactory.create(username="moderator")


@pytest.fixture
def other_moderator(db: None) -> User:
    return ModeratorFactory.create(username="other-moderator")


@pytest.fixture
def staff(db: None) -> User:
    return StaffFactory.create(username="staff")


@pytest.fixture
def make_case(db: None, uploader: User) -> Callable[..., ReviewCase]:
    """Analyse-and-open the way the detection side does: a finished submission, its faces,
    then `review_case_open`."""

    def make(*, faces: int = 1, **submission_fields: Any) -> ReviewCase:
        submission_fields.setdefault("uploader", uploader)
        submission: Submission = SubmissionFactory.create(**submission_fields)
        for index in range(faces):
            FaceFactory.create(
                submission=submission,
                index=index,
                fake_probability=submission.fake_probability or 0.0,
            )
        case = services.review_case_open(submission=submission)
        assert case is not None
        return case

    return make
