"""Reads for moderation: who may review, the queue, a case's context, the log and metrics."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from detection.models import Submission
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.permissions import REVIEW_CASES

# --- Access ---------------------------------------------------------------------------------


def user_is_reviewer(*, user: User | AnonymousUser) -> bool:
    """Moderators (the group's permission) and staff work the queue."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(REVIEW_CASES)))


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
    """None when the submission never needed review."""
    case = ReviewCase.objects.filter(submission=submission).only("state", "decided_at").first()
    return review_case_outcome(case=case) if case is not None else None


# --- Rules --------------------------------------------------------------------------------------


def review_case_note_required(*, band: str, decision: str) -> bool:
    """A note is owed when overruling the model's band, and to staff on escalation."""
    return (
        (decision == Decision.CONFIRM and band == Submission.Verdict.REAL)
        or (decision == Decision.CLEAR and band == Submission.Verdict.FAKE)
        or decision == Decision.ESCALATE
    )


def review_case_states_claimable(*, user: User) -> tuple[str, ...]:
    """Escalated cases are for staff alone."""
    if user.is_staff:
        return (ReviewCase.State.PENDING, ReviewCase.State.ESCALATED)
    return (ReviewCase.State.PENDING,)


def review_case_states_actionable(*, user: User, decision: str) -> tuple[str, ...]:
    if decision == Decision.ESCALATE:
        return (ReviewCase.State.PENDING,)
    return review_case_states_claimable(user=user)


def review_case_queue_order(*, user: User) -> tuple[Any, ...]:
    """Priority, then age; staff see the cases escalated to them first."""
    order: tuple[Any, ...] = ("-priority", "opened_at", "id")
    if user.is_staff:
        escalated_first = Case(
            When(state=ReviewCase.State.ESCALATED, then=Value(0)), default=Value(1)
        )
        return (escalated_first, *order)
    return order


def review_case_refusal(
    *, case: ReviewCase, user: User, decision: str, now: datetime | None = None
) -> str | None:
    """Why this user cannot take this decision on this case now, or None if they can."""
    if case.state in ReviewCase.DECIDED_STATES:
        return f"This case was already decided: {case.get_state_display().lower()}."
    if case.state not in review_case_states_actionable(user=user, decision=decision):
        if case.state == ReviewCase.State.ESCALATED and not user.is_staff:
            return "This case was escalated; only staff decide it."
        return "This case is already escalated to staff."
    if case.lease_active(now) and case.claimed_by_id != user.pk:
        holder = case.claimed_by.get_username() if case.claimed_by else "another moderator"
        until = timezone.localtime(case.lease_expires_at)
        return f"{holder} is reviewing this case until {until:%H:%M}."
    return None


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
    band: str = ""
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
    if filters.band:
        cases = cases.filter(band=filters.band)
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
    return case.events.select_related("actor").order_by("created_at", "id")


# --- The decision log -----------------------------------------------------------------------

LOG_KINDS = (*ReviewEvent.DECISION_KINDS, ReviewEvent.Kind.REOPENED)


@dataclass(frozen=True)
class LogFilters:
    since: date | None = None
    until: date | None = None
    moderator: str = ""
    kind: str = ""
    band: str = ""


def review_event_decision_log(*, filters: LogFilters) -> QuerySet[ReviewEvent]:
    """Decisions, escalations and reopenings, newest first."""
    events = ReviewEvent.objects.filter(kind__in=LOG_KINDS).select_related(
        "actor", "case__submission__uploader"
    )
    if filters.since:
        events = events.filter(created_at__gte=_start_of(filters.since))
    if filters.until:
        events = events.filter(created_at__lt=_start_of(filters.until + timedelta(days=1)))
    if filters.moderator:
        events = events.filter(actor__username=filters.moderator)
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.band:
        events = events.filter(case__band=filters.band)
    return events.order_by("-created_at", "-id")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


# --- Metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyDecisions:
    day: date
    moderator: str
    confirmed: int
    cleared: int
    escalated: int

    @property
    def total(self) -> int:
        return self.confirmed + self.cleared + self.escalated


@dataclass(frozen=True)
class BandDecisions:
    band: str
    label: str
    confirmed: int
    cleared: int
    escalated: int


@dataclass(frozen=True)
class ModerationMetrics:
    days: int
    awaiting: int
    escalated: int
    oldest_pending_age: timedelta | None
    median_time_to_decision: timedelta | None
    decided_in_window: int
    per_moderator_per_day: list[DailyDecisions]
    band_decisions: list[BandDecisions]


def moderation_metrics(*, days: int = 30, now: datetime | None = None) -> ModerationMetrics:
    """The queue now, and the decisions of the last `days` days."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    open_cases = ReviewCase.objects.filter(state__in=ReviewCase.OPEN_STATES)
    oldest = open_cases.order_by("opened_at").values_list("opened_at", flat=True).first()

    durations = [
        decided_at - opened_at
        for opened_at, decided_at in ReviewCase.objects.filter(
            state__in=ReviewCase.DECIDED_STATES, decided_at__gte=since
        ).values_list("opened_at", "decided_at")
        if decided_at is not None
    ]

    decisions = ReviewEvent.objects.filter(
        kind__in=ReviewEvent.DECISION_KINDS, created_at__gte=since
    )
    per_day: dict[tuple[date, str], dict[str, int]] = {}
    for row in (
        decisions.annotate(day=TruncDate("created_at"))
        .values("day", "actor__username", "kind")
        .annotate(n=Count("pk"))
    ):
        key = (row["day"], row["actor__username"] or "")
        per_day.setdefault(key, {})[row["kind"]] = row["n"]
    by_band: dict[str, dict[str, int]] = {}
    for band_row in decisions.values("case__band", "kind").annotate(n=Count("pk")):
        by_band.setdefault(band_row["case__band"], {})[band_row["kind"]] = band_row["n"]

    return ModerationMetrics(
        days=days,
        awaiting=open_cases.count(),
        escalated=open_cases.filter(state=ReviewCase.State.ESCALATED).count(),
        oldest_pending_age=now - oldest if oldest else None,
        median_time_to_decision=(
            timedelta(seconds=statistics.median(d.total_seconds() for d in durations))
            if durations
            else None
        ),
        decided_in_window=len(durations),
        per_moderator_per_day=[
            DailyDecisions(
                day=day,
                moderator=moderator,
                confirmed=kinds.get(ReviewEvent.Kind.CONFIRMED, 0),
                cleared=kinds.get(ReviewEvent.Kind.CLEARED, 0),
                escalated=kinds.get(ReviewEvent.Kind.ESCALATED, 0),
            )
            for (day, moderator), kinds in sorted(
                per_day.items(), key=lambda item: (-item[0][0].toordinal(), item[0][1])
            )
        ],
        band_decisions=[
            BandDecisions(
                band=band,
                label=label,
                confirmed=by_band.get(band, {}).get(ReviewEvent.Kind.CONFIRMED, 0),
                cleared=by_band.get(band, {}).get(ReviewEvent.Kind.CLEARED, 0),
                escalated=by_band.get(band, {}).get(ReviewEvent.Kind.ESCALATED, 0),
            )
            for band, label in Submission.Verdict.choices
        ],
    )
