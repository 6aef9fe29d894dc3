"""Reads for moderation: the queue, a case's context, what the uploader sees, the log, near-copies
and hash banks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from detection.models import Face, Submission
from moderation.models import (
    HashBank,
    HashBankEntry,
    ImageMatch,
    InheritedOutcome,
    ReviewCase,
    ReviewEvent,
)
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
    """The moderation outcome shown to the uploader. Notes and moderators stay internal.

    `inherited_from` is set when the outcome is that of a near-copy's case (decisions
    follow the image); which case it is, is for moderators only.
    """

    state: str
    label: str
    decided_at: datetime | None
    inherited_from: InheritedOutcome | None = None

    @property
    def inherited(self) -> bool:
        return self.inherited_from is not None


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

    Its own case decides; without one, the case of the near-copy it inherited from. Reads
    the `review_case` and `inherited_outcome` relations, so a list fetched with
    `select_related(*OUTCOME_RELATIONS)` costs no query per row.
    """
    case = getattr(submission, "review_case", None)
    if case is not None:
        return review_case_outcome(case=case)
    inherited = getattr(submission, "inherited_outcome", None)
    if inherited is None:
        return None
    return replace(review_case_outcome(case=inherited.source_case), inherited_from=inherited)


OUTCOME_RELATIONS = ("review_case", "inherited_outcome__source_case")


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

# The filters that show only undecided cases, where a cluster of near-copies is one row.
CLUSTERED_FILTERS = (
    STATE_OPEN,
    STATE_PENDING,
    STATE_IN_REVIEW,
    ReviewCase.State.ESCALATED.value,
)

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
    order = review_case_queue_order(user=user)
    if filters.state in CLUSTERED_FILTERS:
        # Near-copies waiting together show as one row: the most urgent case of each
        # cluster, with `cluster_size` the number of its cases these filters select.
        cluster = Coalesce(F("cluster"), F("id"))
        cases = cases.annotate(
            cluster_size=Window(Count("pk"), partition_by=[cluster]),
            cluster_rank=Window(RowNumber(), partition_by=[cluster], order_by=list(order)),
        ).filter(cluster_rank=1)
    return cases.order_by(*order)


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
        .select_related(*OUTCOME_RELATIONS)
        .order_by("-queued_at")[:limit]
    )
    rows = []
    for submission in submissions:
        other_case = getattr(submission, "review_case", None)
        rows.append(
            UploaderSubmission(
                submission=submission,
                outcome=submission_outcome(submission=submission),
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


# --- Near-copies and hash banks ------------------------------------------------------------


def review_case_cluster_others(*, case: ReviewCase) -> QuerySet[ReviewCase]:
    """The other open cases of the case's cluster: near-copies that one decision settles."""
    if case.cluster is None:
        return ReviewCase.objects.none()
    return (
        ReviewCase.objects.filter(cluster=case.cluster, state__in=ReviewCase.OPEN_STATES)
        .exclude(pk=case.pk)
        .select_related("submission__uploader")
        .order_by("opened_at", "id")
    )


def review_cases_with_clusters(*, cases: Iterable[ReviewCase]) -> list[ReviewCase]:
    """The cases and the other open cases of their clusters: what a decision on them settles."""
    chosen = list(cases)
    clusters = {case.cluster for case in chosen if case.cluster}
    others = ReviewCase.objects.filter(
        cluster__in=clusters, state__in=ReviewCase.OPEN_STATES
    ).exclude(pk__in=[case.pk for case in chosen])
    return [*chosen, *others]


@dataclass(frozen=True)
class NearCopy:
    """One near-copy of a submission's image: another submission, or a hash bank entry."""

    distance: int
    submission: Submission | None = None
    outcome: SubmissionOutcome | None = None
    bank_entry: HashBankEntry | None = None


def submission_near_copies(*, submission: Submission) -> list[NearCopy]:
    """Near-copies found when this submission was analysed, and later submissions that found
    it, nearest first, with their moderation outcomes; then bank entries."""
    found = ImageMatch.objects.filter(submission=submission).select_related(
        *(f"matched_submission__{name}" for name in (*OUTCOME_RELATIONS, "uploader")),
        "bank_entry__bank",
    )
    found_by = ImageMatch.objects.filter(matched_submission=submission).select_related(
        *(f"submission__{name}" for name in (*OUTCOME_RELATIONS, "uploader"))
    )
    return near_copies_of(submission=submission, found=found, found_by=found_by)


def near_copies_of(
    *, submission: Submission, found: Iterable[ImageMatch], found_by: Iterable[ImageMatch]
) -> list[NearCopy]:
    """Combine the matches a submission found and those that found it (prefetched or not)."""
    others: dict[uuid.UUID, NearCopy] = {}
    banks = []
    for match in found:
        if match.bank_entry is not None:
            banks.append(NearCopy(distance=match.distance, bank_entry=match.bank_entry))
        elif match.matched_submission is not None:
            _keep_nearest(others, match.matched_submission, match.distance)
    for match in found_by:
        _keep_nearest(others, match.submission, match.distance)
    others.pop(submission.pk, None)
    copies = sorted(others.values(), key=lambda copy: copy.distance)
    return copies + sorted(banks, key=lambda copy: copy.distance)


def _keep_nearest(copies: dict[uuid.UUID, NearCopy], other: Submission, distance: int) -> None:
    known = copies.get(other.pk)
    if known is None or known.distance > distance:
        copies[other.pk] = NearCopy(
            distance=distance, submission=other, outcome=submission_outcome(submission=other)
        )


def review_case_inherited_by(*, case: ReviewCase) -> QuerySet[InheritedOutcome]:
    """Near-copies uploaded later that show this case's outcome instead of a case of their own."""
    return (
        InheritedOutcome.objects.filter(source_case=case, submission__review_case__isnull=True)
        .select_related("submission__uploader")
        .order_by("-inherited_at")
    )


def hash_banks_known_manipulated() -> QuerySet[HashBank]:
    return HashBank.objects.filter(kind=HashBank.Kind.KNOWN_MANIPULATED).order_by("name")


def hash_bank_export(*, bank: HashBank) -> str:
    """The bank as text, in the order its hashes were added: one 64-hex-digit PDQ hash per
    line, then a comma and the label when there is one (what `hash_bank_import` reads)."""
    lines = [
        f"{pdq},{label}" if label else pdq
        for pdq, label in HashBankEntry.objects.filter(bank=bank)
        .order_by("id")
        .values_list("pdq", "label")
        .iterator(chunk_size=5000)
    ]
    return "".join(f"{line}\n" for line in lines)


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
