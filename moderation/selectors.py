"""Reads for moderation: the queue, a case's context, what the uploader sees, the log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from detection.models import Face, Submission
from moderation.models import ReviewCase, ReviewEvent
from moderation.rules import review_case_queue_order


def review_case_get(*, case_id: uuid.UUID) -> ReviewCase | None:
    return (
        ReviewCase.objects.select_related("submission__uploader", "claimed_by", "decided_by")
        .filter(pk=case_id)
        .first()
    )


# --- What the uploader sees -------------------------------------------------------------------


@dataclass(frozen=True)
class SubmissionOutcome:
    """The moderation outcome shown to the uploader. Notes and moderators stay internal."""

    state: str
    label: str
    decided_at: datetime | None


PENDING_REVIEW = "pending_review"
CONFIRMED_MANIPULATED = "confirmed_manipulated"
CLEARED = "cleared"
_OUTCOMES = {
    ReviewCase.State.PENDING: (PENDING_REVIEW, "pending review"),
    ReviewCase.State.ESCALATED: (PENDING_REVIEW, "pending review"),
    ReviewCase.State.CONFIRMED: (CONFIRMED_MANIPULATED, "confirmed manipulated"),
    ReviewCase.State.CLEARED: (CLEARED, "cleared"),
}


def review_case_outcome(*, case: ReviewCase) -> SubmissionOutcome:
    state, label = _OUTCOMES[ReviewCase.State(case.state)]
    decided_at = case.decided_at if state != PENDING_REVIEW else None
    return SubmissionOutcome(state=state, label=label, decided_at=decided_at)


def submission_outcome(*, submission: Submission) -> SubmissionOutcome | None:
    """None when the submission never needed review.

    Reads the submission's `review_case` relation, so a list fetched with
    `select_related("review_case")` costs no query per row.
    """
    case = getattr(submission, "review_case", None)
    return review_case_outcome(case=case) if case is not None else None


# --- The queue ------------------------------------------------------------------------------------

STATE_OPEN = "open"
STATE_PENDING = "pending"
STATE_IN_REVIEW = "in_review"
STATE_ALL = "all"
STATE_FILTERS = [
    (STATE_OPEN, "Awaiting decision"),
    (STATE_PENDING, "Pending, unclaimed"),
    (STATE_IN_REVIEW, "In review"),
    (ReviewCase.State.ESCALATED.value, "Escalated to staff"),
    (ReviewCase.State.CONFIRMED.value, "Confirmed manipulated"),
    (ReviewCase.State.CLEARED.value, "Cleared as authentic"),
    (STATE_ALL, "All"),
]

AGE_FILTERS = [
    ("", "Any age"),
    ("lt1h", "Under an hour"),
    ("gt1h", "Over an hour"),
    ("gt24h", "Over a day"),
    ("gt7d", "Over a week"),
]
_AGE_LIMITS = {
    "lt1h": ("gt", timedelta(hours=1)),
    "gt1h": ("lte", timedelta(hours=1)),
    "gt24h": ("lte", timedelta(days=1)),
    "gt7d": ("lte", timedelta(days=7)),
}


@dataclass(frozen=True)
class QueueFilters:
    state: str = STATE_OPEN
    verdict: str = ""
    min_probability: float | None = None
    max_probability: float | None = None
    age: str = ""


def review_case_queue(
    *, filters: QueueFilters, user: User, now: datetime | None = None
) -> QuerySet[ReviewCase]:
    """Cases by priority then age (staff: escalated first), narrowed by the filters."""
    now = now or timezone.now()
    live_lease = Q(claimed_by__isnull=False, lease_expires_at__gt=now)
    cases = ReviewCase.objects.select_related("submission__uploader", "claimed_by", "decided_by")
    if filters.state == STATE_OPEN:
        cases = cases.filter(state__in=ReviewCase.OPEN_STATES)
    elif filters.state == STATE_PENDING:
        cases = cases.filter(state=ReviewCase.State.PENDING).exclude(live_lease)
    elif filters.state == STATE_IN_REVIEW:
        cases = cases.filter(live_lease, state__in=ReviewCase.OPEN_STATES)
    elif filters.state != STATE_ALL:
        cases = cases.filter(state=filters.state)
    if filters.verdict:
        cases = cases.filter(verdict=filters.verdict)
    if filters.min_probability is not None:
        cases = cases.filter(fake_probability__gte=filters.min_probability)
    if filters.max_probability is not None:
        cases = cases.filter(fake_probability__lte=filters.max_probability)
    if filters.age:
        lookup, age = _AGE_LIMITS[filters.age]
        cases = cases.filter(**{f"opened_at__{lookup}": now - age})
    return cases.order_by(*review_case_queue_order(user=user))


def review_case_counts(*, now: datetime | None = None) -> dict[str, int]:
    """How many cases are in each state, with claimed open cases counted as in review."""
    now = now or timezone.now()
    live_lease = Q(claimed_by__isnull=False, lease_expires_at__gt=now)
    counts = ReviewCase.objects.aggregate(
        pending=Count("pk", filter=Q(state=ReviewCase.State.PENDING) & ~live_lease),
        in_review=Count("pk", filter=Q(state__in=ReviewCase.OPEN_STATES) & live_lease),
        escalated=Count("pk", filter=Q(state=ReviewCase.State.ESCALATED)),
        confirmed=Count("pk", filter=Q(state=ReviewCase.State.CONFIRMED)),
        cleared=Count("pk", filter=Q(state=ReviewCase.State.CLEARED)),
    )
    return {key: int(value or 0) for key, value in counts.items()}


# --- One case's context ----------------------------------------------------------------------


@dataclass(frozen=True)
class UploaderSubmission:
    submission: Submission
    outcome: SubmissionOutcome | None
    case_id: uuid.UUID | None


def uploader_other_submissions(*, case: ReviewCase, limit: int = 20) -> list[UploaderSubmission]:
    """The uploader's other submissions, newest first, with their moderation outcomes."""
    submissions = (
        Submission.objects.filter(uploader_id=case.submission.uploader_id)
        .exclude(pk=case.submission_id)
        .select_related("review_case")
        .order_by("-queued_at")[:limit]
    )
    rows = []
    for submission in submissions:
        other_case = getattr(submission, "review_case", None)
        rows.append(
            UploaderSubmission(
                submission=submission,
                outcome=review_case_outcome(case=other_case) if other_case else None,
                case_id=other_case.pk if other_case else None,
            )
        )
    return rows


def review_case_same_image_decisions(*, case: ReviewCase) -> QuerySet[ReviewCase]:
    """Decided cases on other submissions of the very same bytes (same sha256)."""
    return (
        ReviewCase.objects.filter(
            submission__sha256=case.submission.sha256, state__in=ReviewCase.DECIDED_STATES
        )
        .exclude(pk=case.pk)
        .select_related("submission__uploader", "decided_by")
        .order_by("-decided_at")
    )


def review_case_events(*, case: ReviewCase) -> QuerySet[ReviewEvent]:
    """The case's history; while a second review is pending, without the first decision,
    which the second moderator must not see."""
    events = case.events.select_related("actor").order_by("created_at", "id")
    if case.awaiting_second_review:
        events = events.exclude(kind__in=_FIRST_REVIEW_KINDS, actor_id=case.first_decided_by_id)
    return events


# A first review is a confirmation or a clearing; an escalation is never sampled.
_FIRST_REVIEW_KINDS = (ReviewEvent.Kind.CONFIRMED, ReviewEvent.Kind.CLEARED)


# --- The decision log -----------------------------------------------------------------------

LOG_KINDS = (*ReviewEvent.DECISION_KINDS, ReviewEvent.Kind.REOPENED)


@dataclass(frozen=True)
class LogFilters:
    since: date | None = None
    until: date | None = None
    moderator: str = ""
    kind: str = ""
    verdict: str = ""


def review_event_decision_log(*, filters: LogFilters) -> QuerySet[ReviewEvent]:
    """Decisions, escalations and reopenings, newest first."""
    events = (
        ReviewEvent.objects.filter(kind__in=LOG_KINDS)
        .exclude(
            # First reviews stay hidden until the second, independent one is made.
            kind__in=_FIRST_REVIEW_KINDS,
            case__review_round=2,
            case__state=ReviewCase.State.PENDING,
        )
        .select_related("actor", "case__submission__uploader")
    )
    if filters.since:
        events = events.filter(created_at__gte=_start_of(filters.since))
    if filters.until:
        events = events.filter(created_at__lt=_start_of(filters.until + timedelta(days=1)))
    if filters.moderator:
        events = events.filter(actor__username=filters.moderator)
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.verdict:
        events = events.filter(case__verdict=filters.verdict)
    return events.order_by("-created_at", "-id")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


# --- Decisions as data -----------------------------------------------------------------


@dataclass(frozen=True)
class DecidedFace:
    submission_id: uuid.UUID
    index: int
    crop_name: str  # in the media storage
    label: str  # real or fake
    # The original image: every face of it, and each near-copy, stays on one side of a split.
    group: str
    source: str  # moderation-flagged or moderation-qa


def decided_faces(*, since: datetime | None = None) -> list[DecidedFace]:
    """The good faces of decided cases, labelled by the decision.

    A cleared photo's good faces are all real. A confirmed photo says only that some face
    was manipulated: its good face the model found most suspicious is taken as the fake.
    """
    cases = (
        ReviewCase.objects.filter(state__in=ReviewCase.DECIDED_STATES)
        .select_related("submission")
        .prefetch_related("submission__faces")
    )
    if since is not None:
        cases = cases.filter(decided_at__gte=since)
    found = []
    for case in cases.order_by("decided_at", "id"):
        good = [face for face in case.submission.faces.all() if face.quality == Face.Quality.OK]
        confirmed = case.state == ReviewCase.State.CONFIRMED
        if confirmed:
            good = sorted(good, key=lambda face: face.fake_probability)[-1:]
        found += [
            DecidedFace(
                submission_id=case.submission_id,
                index=face.index,
                crop_name=str(face.crop.name),
                label="fake" if confirmed else "real",
                group=case.submission.sha256,
                source=f"moderation-{case.kind}",
            )
            for face in good
        ]
    return found
