"""The moderation metrics page's numbers: the queue now, and the decisions of a window."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from detection.models import Submission
from moderation.models import ReviewCase, ReviewEvent


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
class VerdictDecisions:
    verdict: str
    label: str
    confirmed: int
    cleared: int
    escalated: int


@dataclass(frozen=True)
class RateEstimate:
    """A share of decided cases, with how many it rests on."""

    share: float | None  # None when no case was decided
    cases: int


@dataclass(frozen=True)
class PairAgreement:
    """Two moderators who reviewed the same cases independently (double review)."""

    first: str
    second: str
    cases: int
    agreement: float
    kappa: float | None  # Cohen's kappa; None when chance agreement is total


@dataclass(frozen=True)
class QueueDay:
    day: date
    decisions: int
    pending: int  # open at the end of the day
    oldest_hours: float | None  # age of the oldest open case at the end of the day


@dataclass(frozen=True)
class ModerationMetrics:
    days: int
    awaiting: int
    escalated: int
    oldest_pending_age: timedelta | None
    median_time_to_decision: timedelta | None
    decided_in_window: int
    per_moderator_per_day: list[DailyDecisions]
    verdict_decisions: list[VerdictDecisions]
    # Of the cases the model called likely manipulated, the share moderators cleared.
    false_positive: RateEstimate
    # Of the quality checks (photos the model found nothing in), the share confirmed fake.
    false_negative: RateEstimate
    agreement: list[PairAgreement]
    queue_days: list[QueueDay]


def _share(cases: QuerySet[ReviewCase], state: str) -> RateEstimate:
    counts = cases.aggregate(total=Count("pk"), hits=Count("pk", filter=Q(state=state)))
    total = int(counts["total"] or 0)
    return RateEstimate(share=counts["hits"] / total if total else None, cases=total)


def _agreement(since: datetime) -> list[PairAgreement]:
    """Per pair of moderators: how often their independent reviews agreed, and kappa."""
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    # Decided in the window, or sent to staff because the two reviews disagreed.
    reviewed_twice = ReviewCase.objects.filter(
        Q(decided_at__gte=since) | Q(state=ReviewCase.State.ESCALATED),
        second_decided_by__isnull=False,
    ).values_list(
        "first_decision",
        "second_decision",
        "first_decided_by__username",
        "second_decided_by__username",
    )
    for first, second, first_name, second_name in reviewed_twice:
        if first_name <= second_name:
            pairs.setdefault((first_name, second_name), []).append((first, second))
        else:
            pairs.setdefault((second_name, first_name), []).append((second, first))
    return [
        PairAgreement(
            first=a,
            second=b,
            cases=len(votes),
            agreement=sum(x == y for x, y in votes) / len(votes),
            kappa=_kappa(votes),
        )
        for (a, b), votes in sorted(pairs.items())
    ]


def _kappa(votes: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters: agreement beyond what their own rates would give."""
    observed = sum(a == b for a, b in votes) / len(votes)
    labels = {label for vote in votes for label in vote}
    expected = sum(
        (sum(a == label for a, _ in votes) / len(votes))
        * (sum(b == label for _, b in votes) / len(votes))
        for label in labels
    )
    return (observed - expected) / (1 - expected) if expected < 1 else None


def _queue_days(now: datetime, days: int) -> list[QueueDay]:
    """Per day of the window: decisions made, cases open at its end and the oldest's age."""
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    window_start = _start_of_day(first_day)
    cases = list(
        ReviewCase.objects.filter(
            Q(decided_at__isnull=True) | Q(decided_at__gte=window_start),
            opened_at__lt=now,
        ).values_list("opened_at", "decided_at")
    )
    per_day = dict(
        ReviewEvent.objects.filter(
            kind__in=ReviewEvent.DECISION_KINDS, created_at__gte=window_start
        )
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        end = min(_start_of_day(day + timedelta(days=1)), now)
        waiting = [
            opened
            for opened, decided in cases
            if opened < end and (decided is None or decided >= end)
        ]
        oldest = min(waiting, default=None)
        rows.append(
            QueueDay(
                day=day,
                decisions=int(per_day.get(day, 0)),
                pending=len(waiting),
                oldest_hours=(end - oldest).total_seconds() / 3600 if oldest else None,
            )
        )
    return rows


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def moderation_metrics(*, days: int = 30, now: datetime | None = None) -> ModerationMetrics:
    """The queue now, and the decisions of the last `days` days."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    open_cases = ReviewCase.objects.filter(state__in=ReviewCase.OPEN_STATES)
    oldest = open_cases.order_by("opened_at").values_list("opened_at", flat=True).first()

    decided_in_window = ReviewCase.objects.filter(
        state__in=ReviewCase.DECIDED_STATES, decided_at__gte=since
    )
    durations = [
        decided_at - opened_at
        for opened_at, decided_at in decided_in_window.values_list("opened_at", "decided_at")
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
    by_verdict: dict[str, dict[str, int]] = {}
    for verdict_row in decisions.values("case__verdict", "kind").annotate(n=Count("pk")):
        kinds = by_verdict.setdefault(verdict_row["case__verdict"], {})
        kinds[verdict_row["kind"]] = verdict_row["n"]

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
        verdict_decisions=[
            VerdictDecisions(
                verdict=verdict,
                label=label,
                confirmed=by_verdict.get(verdict, {}).get(ReviewEvent.Kind.CONFIRMED, 0),
                cleared=by_verdict.get(verdict, {}).get(ReviewEvent.Kind.CLEARED, 0),
                escalated=by_verdict.get(verdict, {}).get(ReviewEvent.Kind.ESCALATED, 0),
            )
            for verdict, label in Submission.Verdict.choices
        ],
        false_positive=_share(
            decided_in_window.filter(kind=ReviewCase.Kind.FLAGGED, verdict=Submission.Verdict.FAKE),
            ReviewCase.State.CLEARED,
        ),
        false_negative=_share(
            decided_in_window.filter(kind=ReviewCase.Kind.QA), ReviewCase.State.CONFIRMED
        ),
        agreement=_agreement(since),
        queue_days=_queue_days(now, days),
    )
