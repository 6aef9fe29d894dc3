"""Writes for moderation: opening cases, leased claims, decisions and reopening.

Every state change is a conditional UPDATE that names the state it expects, followed by
exactly one ReviewEvent in the same transaction: two moderators acting on the same case at
once cannot both succeed, and the audit trail never records a change that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from detection.models import Face, Submission
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.rules import (
    review_case_note_problem,
    review_case_queue_order,
    review_case_refusal,
    review_case_states_actionable,
    review_case_states_claimable,
    review_cases_not_uploaded_by,
)
from moderation.selectors import review_case_outcome
from webhooks import services as webhook_services

FLAGGED_VERDICTS = (Submission.Verdict.FAKE, Submission.Verdict.UNCERTAIN)
VERDICTS = tuple(Submission.Verdict.values)

# Priority weights. The model's probability dominates (0-100); every face beyond the first
# adds 5 (a group photo harms more people; at most +20); every earlier submission of the
# same uploader that moderators confirmed manipulated adds 15 (repeat offenders; at most
# +45). Ties are broken by age in the queue.
_FACE_WEIGHT, _FACE_CAP = 5, 20
_RECORD_WEIGHT, _RECORD_CAP = 15, 45

_DECISION_RESULT = {
    Decision.CONFIRM: (ReviewCase.State.CONFIRMED, ReviewEvent.Kind.CONFIRMED),
    Decision.CLEAR: (ReviewCase.State.CLEARED, ReviewEvent.Kind.CLEARED),
    Decision.ESCALATE: (ReviewCase.State.ESCALATED, ReviewEvent.Kind.ESCALATED),
}


def review_case_open(*, submission: Submission) -> ReviewCase | None:
    """Open the review case for a finished analysis, or keep the one the submission has.

    Called by the detection side inside the transaction that stores the result.
    - No case yet: a `fake` or `uncertain` verdict opens one (with its `opened` event);
      any other verdict opens nothing and returns None.
    - An open case (a re-analysis while it waits): its snapshot and priority follow the new
      result, so moderators judge what the case page shows; no second case, no event.
    - A decided case: the human decision stands and is returned unchanged; a re-run of the
      model does not undo it. Reopening is an explicit act (`review_case_reopen`).
    """
    existing = ReviewCase.objects.filter(submission=submission).first()
    if existing is not None:
        if existing.is_open and submission.verdict in VERDICTS:
            ReviewCase.objects.filter(pk=existing.pk, state__in=ReviewCase.OPEN_STATES).update(
                **_snapshot(submission)
            )
            existing.refresh_from_db()
        return existing
    if submission.verdict not in FLAGGED_VERDICTS:
        return None
    now = timezone.now()
    try:
        # A savepoint: if a concurrent call opened the case first, only this insert rolls
        # back, not the caller's transaction.
        with transaction.atomic():
            case = ReviewCase.objects.create(
                submission=submission, opened_at=now, **_snapshot(submission)
            )
            ReviewEvent.objects.create(case=case, kind=ReviewEvent.Kind.OPENED, created_at=now)
    except IntegrityError:
        return ReviewCase.objects.get(submission=submission)
    return case


def review_case_expire_leases(*, now: datetime | None = None) -> int:
    """Return every case whose lease has lapsed to the queue; one `lease_expired` each.

    Run lazily before reads and writes instead of by a timer. Each release is conditional
    on the exact lease it saw, so concurrent callers write the event only once.
    """
    now = now or timezone.now()
    expired = list(
        ReviewCase.objects.filter(claimed_by__isnull=False, lease_expires_at__lte=now).values_list(
            "pk", "claimed_by_id", "lease_expires_at"
        )
    )
    released = 0
    for case_id, holder_id, expires_at in expired:
        with transaction.atomic():
            updated = ReviewCase.objects.filter(
                pk=case_id, claimed_by_id=holder_id, lease_expires_at=expires_at
            ).update(claimed_by=None, lease_expires_at=None)
            if updated:
                # Written when noticed, like every event, so the trail stays in time order;
                # the note keeps when the lease really ran out.
                ReviewEvent.objects.create(
                    case_id=case_id,
                    kind=ReviewEvent.Kind.LEASE_EXPIRED,
                    actor_id=holder_id,
                    note=f"Lease ran out at {expires_at:%Y-%m-%d %H:%M:%S %Z}.",
                    created_at=now,
                )
                released += 1
    return released


def review_case_claim_next(*, user: User) -> ReviewCase | None:
    """Claim the most urgent unclaimed case for the lease time; None when nothing waits.

    A moderator works one case at a time: one who still holds a live lease gets that case
    back. Staff take escalated cases first. Two callers never receive the same case.
    """
    now = timezone.now()
    review_case_expire_leases(now=now)
    states = review_case_states_claimable(user=user)
    open_to_user = ReviewCase.objects.filter(
        review_cases_not_uploaded_by(user=user), state__in=states
    )
    held = (
        open_to_user.filter(claimed_by=user, lease_expires_at__gt=now)
        .order_by(*review_case_queue_order(user=user))
        .first()
    )
    if held is not None:
        return held
    unclaimed = open_to_user.filter(claimed_by__isnull=True).order_by(
        *review_case_queue_order(user=user)
    )
    if connection.features.has_select_for_update_skip_locked:
        return _claim_skip_locked(unclaimed, user=user, now=now)
    return _claim_conditional(unclaimed, user=user, now=now)


def review_case_claim(*, case: ReviewCase, user: User) -> ReviewCase:
    """Claim one chosen case (from the queue); renewing one's own lease writes no event."""
    now = timezone.now()
    review_case_expire_leases(now=now)
    claimable = ReviewCase.objects.filter(
        review_cases_not_uploaded_by(user=user),
        pk=case.pk,
        state__in=review_case_states_claimable(user=user),
    )
    with transaction.atomic():
        renewed = claimable.filter(claimed_by=user).update(lease_expires_at=_lease_end(now))
        if not renewed:
            claimed = claimable.filter(claimed_by__isnull=True).update(
                claimed_by=user, lease_expires_at=_lease_end(now)
            )
            if not claimed:
                raise _refused(case, user=user, decision=Decision.CONFIRM)
            ReviewEvent.objects.create(
                case_id=case.pk, kind=ReviewEvent.Kind.CLAIMED, actor=user, created_at=now
            )
    case.refresh_from_db()
    return case


def review_case_release(*, case: ReviewCase, user: User, note: str = "") -> ReviewCase:
    """Give a claimed case back to the queue undecided."""
    now = timezone.now()
    review_case_expire_leases(now=now)
    with transaction.atomic():
        released = ReviewCase.objects.filter(pk=case.pk, claimed_by=user).update(
            claimed_by=None, lease_expires_at=None
        )
        if not released:
            raise ValidationError("You do not hold this case.", code="not_claimed")
        ReviewEvent.objects.create(
            case_id=case.pk,
            kind=ReviewEvent.Kind.RELEASED,
            actor=user,
            note=note.strip(),
            created_at=now,
        )
    case.refresh_from_db()
    return case


def review_case_decide(
    *, case: ReviewCase, user: User, decision: Decision, note: str = ""
) -> ReviewCase:
    """Confirm manipulated, mark authentic or escalate to staff, with one event.

    Raises ValidationError when the note is required but empty, the case is no longer
    open, another moderator holds its lease, or only staff may decide it.
    """
    note = note.strip()
    now = timezone.now()
    review_case_expire_leases(now=now)
    new_state, kind = _DECISION_RESULT[decision]
    decided = decision != Decision.ESCALATE
    with transaction.atomic():
        current = ReviewCase.objects.select_for_update().get(pk=case.pk)
        refusal = review_case_refusal(case=current, user=user, decision=decision, now=now)
        if refusal:
            raise ValidationError(refusal, code="refused")
        problem = review_case_note_problem(verdict=current.verdict, decision=decision, note=note)
        if problem:
            raise ValidationError(problem, code="note_required")
        updated = (
            ReviewCase.objects.filter(
                review_cases_not_uploaded_by(user=user),
                pk=case.pk,
                state__in=review_case_states_actionable(user=user, decision=decision),
            )
            .filter(Q(claimed_by__isnull=True) | Q(claimed_by=user))
            .update(
                state=new_state,
                claimed_by=None,
                lease_expires_at=None,
                decided_by=user if decided else None,
                decided_at=now if decided else None,
            )
        )
        if not updated:
            raise _refused(case, user=user, decision=decision)
        ReviewEvent.objects.create(
            case_id=case.pk, kind=kind, actor=user, note=note, created_at=now
        )
        if decided:
            # The uploader's platform learns the outcome once the decision is committed.
            decided_case = ReviewCase.objects.select_related("submission").get(pk=case.pk)
            webhook_services.submission_decided_notify(
                submission=decided_case.submission,
                outcome=review_case_outcome(case=decided_case),
            )
    case.refresh_from_db()
    return case


@dataclass
class BulkResult:
    """What one action on many cases did: the cases it changed, and the others with why."""

    changed: list[ReviewCase] = field(default_factory=list)
    refused: list[tuple[ReviewCase, str]] = field(default_factory=list)


def review_case_decide_bulk(
    *, cases: Iterable[ReviewCase], user: User, decision: Decision, note: str = ""
) -> BulkResult:
    """The same decision and note on many cases, each with its own event.

    Cases that cannot take it (decided meanwhile, held by someone else, staff-only) are
    reported and skipped; the others are decided. The caller checks the note requirement
    for the whole batch first, so that a missing note refuses all of it.
    """
    return _each_case(
        cases, lambda case: review_case_decide(case=case, user=user, decision=decision, note=note)
    )


def review_case_reopen(*, case: ReviewCase, user: User, note: str = "") -> ReviewCase:
    """Send a decided case back to the queue (an admin action), e.g. after a re-analysis.

    The snapshot is taken again from the submission's current analysis; the earlier
    decision stays in the event history.
    """
    now = timezone.now()
    with transaction.atomic():
        submission = Submission.objects.get(pk=case.submission_id)
        snapshot = _snapshot(submission) if submission.verdict in VERDICTS else {}
        reopened = ReviewCase.objects.filter(
            pk=case.pk, state__in=ReviewCase.DECIDED_STATES
        ).update(
            state=ReviewCase.State.PENDING,
            decided_by=None,
            decided_at=None,
            claimed_by=None,
            lease_expires_at=None,
            **snapshot,
        )
        if not reopened:
            raise ValidationError("Only a decided case can be reopened.", code="not_decided")
        ReviewEvent.objects.create(
            case_id=case.pk,
            kind=ReviewEvent.Kind.REOPENED,
            actor=user,
            note=note.strip(),
            created_at=now,
        )
    case.refresh_from_db()
    return case


def review_case_reopen_many(
    *, cases: Iterable[ReviewCase], user: User, note: str = ""
) -> BulkResult:
    """Reopen each decided case (the admins' bulk action); undecided ones are reported."""
    return _each_case(cases, lambda case: review_case_reopen(case=case, user=user, note=note))


def _each_case(
    cases: Iterable[ReviewCase], action: Callable[[ReviewCase], ReviewCase]
) -> BulkResult:
    result = BulkResult()
    for case in cases:
        try:
            result.changed.append(action(case))
        except ValidationError as error:
            result.refused.append((case, " ".join(error.messages)))
    return result


def _snapshot(submission: Submission) -> dict[str, Any]:
    face_count = submission.faces.count()
    # Faces too poor to judge are shown but add nothing to the urgency.
    judged_faces = submission.faces.filter(quality=Face.Quality.OK).count()
    fake_probability = submission.fake_probability or 0.0
    confirmed_fakes = (
        ReviewCase.objects.filter(
            submission__uploader_id=submission.uploader_id, state=ReviewCase.State.CONFIRMED
        )
        .exclude(submission=submission)
        .count()
    )
    priority = (
        round(100 * fake_probability)
        + min(_FACE_WEIGHT * max(judged_faces - 1, 0), _FACE_CAP)
        + min(_RECORD_WEIGHT * confirmed_fakes, _RECORD_CAP)
    )
    return {
        "verdict": submission.verdict,
        "fake_probability": fake_probability,
        "face_count": face_count,
        "priority": priority,
    }


def _lease_end(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.MODERATION_LEASE_MINUTES)


def _claim_skip_locked(
    unclaimed: QuerySet[ReviewCase], *, user: User, now: datetime
) -> ReviewCase | None:
    # Rows another transaction is claiming right now are skipped, not waited for, so
    # simultaneous callers each lock a different case.
    with transaction.atomic():
        case = unclaimed.select_for_update(skip_locked=True).first()
        if case is None:
            return None
        case.claimed_by = user
        case.lease_expires_at = _lease_end(now)
        case.save(update_fields=["claimed_by", "lease_expires_at"])
        ReviewEvent.objects.create(
            case=case, kind=ReviewEvent.Kind.CLAIMED, actor=user, created_at=now
        )
    return case


def _claim_conditional(
    unclaimed: QuerySet[ReviewCase], *, user: User, now: datetime
) -> ReviewCase | None:
    # Without SKIP LOCKED (SQLite): the UPDATE only matches a still-unclaimed row, so of two
    # callers that picked the same candidate exactly one changes it; the other moves on.
    # Every failed candidate was taken by someone else, so the loop ends.
    while True:
        candidates = list(unclaimed.values_list("pk", flat=True)[:10])
        if not candidates:
            return None
        for case_id in candidates:
            with transaction.atomic():
                claimed = unclaimed.filter(pk=case_id).update(
                    claimed_by=user, lease_expires_at=_lease_end(now)
                )
                if claimed:
                    ReviewEvent.objects.create(
                        case_id=case_id, kind=ReviewEvent.Kind.CLAIMED, actor=user, created_at=now
                    )
                    return ReviewCase.objects.get(pk=case_id)


def _refused(case: ReviewCase, *, user: User, decision: Decision) -> ValidationError:
    current = ReviewCase.objects.get(pk=case.pk)
    message = review_case_refusal(case=current, user=user, decision=decision)
    return ValidationError(message or "This case changed meanwhile; try again.", code="refused")
