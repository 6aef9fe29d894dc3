"""Reads for the detection app. Access rules live here so that every view shares them."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from detection.models import Submission
from moderation.permissions import REVIEW_CASES


def user_sees_every_submission(user: User | AnonymousUser) -> bool:
    """Moderators and staff may open any submission; uploaders only their own."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(REVIEW_CASES)))


def submission_get_for_user(
    *, submission_id: uuid.UUID, user: User | AnonymousUser
) -> Submission | None:
    """The submission if this user may see it; None otherwise (callers answer 404)."""
    if not user.is_authenticated:
        return None
    submissions = Submission.objects.select_related("uploader")
    if not user_sees_every_submission(user):
        submissions = submissions.filter(uploader=user)
    return submissions.filter(id=submission_id).first()


def submission_list_for_user(
    *, user: User, status: str = "", verdict: str = ""
) -> QuerySet[Submission]:
    """The user's own submissions, newest first, optionally filtered."""
    submissions = Submission.objects.filter(uploader=user)
    if status:
        submissions = submissions.filter(status=status)
    if verdict:
        submissions = submissions.filter(verdict=verdict)
    return submissions.order_by("-queued_at")


def submission_queue_position(*, submission: Submission) -> int:
    """How many queued submissions will be analysed before this one."""
    if submission.status != Submission.Status.QUEUED:
        return 0
    return Submission.objects.filter(
        status=Submission.Status.QUEUED, queued_at__lt=submission.queued_at
    ).count()
