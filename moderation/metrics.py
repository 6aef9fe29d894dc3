"""The moderation metrics page's numbers: the queue now, and the decisions of a window."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count
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
class ModerationMetrics:
    days: int
    awaiting: int
    escalated: int
    oldest_pending_age: timedelta | None
    median_time_to_decision: timedelta | None
    decided_in_window: int
    per_moderator_per_day: list[DailyDecisions]
    verdict_decisions: list[VerdictDecisions]


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
    )
