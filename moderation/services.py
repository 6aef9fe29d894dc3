"""Writes for moderation: opening cases, leased claims, decisions and reopening; near-copies
(decisions that follow an image, clusters) and hash banks.

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
from detection.pdq import pdq_hex_normalise
from detection.pdq_db import pdq_distances
from detection.selectors import submissions_near
from moderation.models import (
    BANK_LABEL_MAX_LENGTH,
    Decision,
    HashBank,
    HashBankEntry,
    ImageMatch,
    InheritedOutcome,
    ReviewCase,
    ReviewEvent,
)
from moderation.rules import (
    hash_bank_add_refusal,
    review_case_note_problem,
    review_case_queue_order,
    review_case_refusal,
    review_case_states_actionable,
    review_case_states_claimable,
    review_cases_open_to,
    sampled,
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
# Added to the priority of a case whose image matches a `known manipulated` hash bank: more
# than any other case can score (at most 165), so such cases always come first.
TOP_PRIORITY = 1000
# Near-copies recorded per submission (the nearest): a viral image may have thousands.
MATCH_RECORD_LIMIT = 50
# Taken (PostgreSQL) while an analysed image is matched and its case opened, so that two
# near-copies analysed at the same moment see each other and end up in one cluster.
_ROUTING_LOCK = 0x46505F4D41544348

_DECIDED_STATE = {
    Decision.CONFIRM: ReviewCase.State.CONFIRMED,
    Decision.CLEAR: ReviewCase.State.CLEARED,
}
_DECISION_EVENT = {
    Decision.CONFIRM: ReviewEvent.Kind.CONFIRMED,
    Decision.CLEAR: ReviewEvent.Kind.CLEARED,
    Decision.ESCALATE: ReviewEvent.Kind.ESCALATED,
}


def review_case_open(*, submission: Submission) -> ReviewCase | None:
    """Route a finished analysis: open its review case, keep the one it has, or let it
    inherit the decision already taken on a near-copy of the image.

    Called by the detection side inside the transaction that stores the result. The image's
    near-copies (other submissions, hash bank entries: PDQ within PDQ_MATCH_DISTANCE) are
    recorded first, then:
    - A case already: an open one follows the new result (snapshot and priority; no second
      case, no event); a decided one stands, since a re-run of the model does not undo a
      human decision. Reopening is an explicit act (`review_case_reopen`).
    - A near-copy was decided (confirmed or cleared): the submission inherits that outcome
      and no case opens, unless the model's verdict, a hash bank or the decisions on the
      near-copies disagree with it; then a case opens, marked as a conflict.
    - A `known manipulated` bank matches: a case opens above every other, with the reason.
    - A `known authentic` bank matches: only a `fake` verdict opens a case (with the reason).
    - Otherwise a `fake` or `uncertain` verdict opens a case, and a `real` one opens a
      quality-check case for QA_SAMPLE_RATE of the photos.
    A new case joins the cluster of the open cases of its near-copies. Returns the case, or
    None when the submission has none.
    """
    evidence = _near_copies_record(submission)
    existing = ReviewCase.objects.filter(submission=submission).first()
    if existing is not None:
        if existing.is_open and submission.verdict in VERDICTS:
            top = existing.known_manipulated_match or bool(evidence and evidence.manipulated)
            ReviewCase.objects.filter(pk=existing.pk, state__in=ReviewCase.OPEN_STATES).update(
                known_manipulated_match=top,
                **_snapshot(submission, ReviewCase.Kind(existing.kind), top=top),
            )
            existing.refresh_from_db()
        return existing
    route = _route(submission, evidence)
    if route.inherit is not None:
        source_case, distance = route.inherit
        InheritedOutcome.objects.update_or_create(
            submission=submission,
            defaults={
                "source_case": source_case,
                "distance": distance,
                "inherited_at": timezone.now(),
            },
        )
        webhook_services.submission_decided_notify(
            submission=submission,
            outcome=review_case_outcome(case=source_case),
            inherited=True,
        )
        return None
    # A re-analysis may contradict what the earlier one inherited.
    InheritedOutcome.objects.filter(submission=submission).delete()
    if not route.opens:
        return None
    case = _case_create(
        submission,
        kind=route.kind,
        reason=route.reason,
        conflict_with=route.conflict_with,
        top=route.known_manipulated,
    )
    if evidence is not None:
        _cluster_join(case, evidence.open_cases)
    return case


@dataclass(frozen=True)
class _NearCopies:
    """What the image matched: decided and open cases of near-copies, and bank entries."""

    decided: list[tuple[ReviewCase, int]]
    open_cases: list[ReviewCase]
    manipulated: list[tuple[HashBankEntry, int]]
    authentic: list[tuple[HashBankEntry, int]]


@dataclass(frozen=True)
class _Route:
    opens: bool
    kind: ReviewCase.Kind = ReviewCase.Kind.FLAGGED
    reason: str = ""
    inherit: tuple[ReviewCase, int] | None = None
    conflict_with: ReviewCase | None = None
    known_manipulated: bool = False


def _near_copies_record(submission: Submission) -> _NearCopies | None:
    """Find the image's near-copies and store them as ImageMatch rows (replacing those of an
    earlier analysis); None when the image has no hash good enough to match."""
    ImageMatch.objects.filter(submission=submission).delete()
    if submission.pdq is None or (submission.pdq_quality or 0) < settings.PDQ_MIN_QUALITY:
        return None
    if connection.vendor == "postgresql":
        # Held to the end of the caller's transaction, past the case's cluster.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROUTING_LOCK])
    near = submissions_near(pdq=submission.pdq, exclude_id=submission.pk)
    in_banks = pdq_distances(
        HashBankEntry.objects.all(),
        field="pdq",
        pdq=submission.pdq,
        max_distance=settings.PDQ_MATCH_DISTANCE,
    )
    entries = sorted(
        (
            (entry, in_banks[entry.pk])
            for entry in HashBankEntry.objects.filter(pk__in=in_banks).select_related("bank")
        ),
        key=lambda pair: (pair[1], pair[0].pk),
    )
    nearest = sorted(near.items(), key=lambda item: (item[1], str(item[0])))[:MATCH_RECORD_LIMIT]
    now = timezone.now()
    ImageMatch.objects.bulk_create(
        [
            ImageMatch(
                submission=submission, matched_submission_id=other, distance=distance, found_at=now
            )
            for other, distance in nearest
        ]
        + [
            ImageMatch(submission=submission, bank_entry=entry, distance=distance, found_at=now)
            for entry, distance in entries[:MATCH_RECORD_LIMIT]
        ]
    )
    cases = list(ReviewCase.objects.filter(submission_id__in=list(near)))
    decided: dict[Any, tuple[ReviewCase, int]] = {}
    for case in cases:
        if case.state in ReviewCase.DECIDED_STATES:
            decided[case.pk] = (case, near[case.submission_id])
    # A near-copy without a case of its own that inherited a decision carries it on.
    for inherited in InheritedOutcome.objects.filter(
        submission_id__in=list(near),
        submission__review_case__isnull=True,
        source_case__state__in=ReviewCase.DECIDED_STATES,
    ).select_related("source_case"):
        distance = near[inherited.submission_id]
        known = decided.get(inherited.source_case_id)
        if known is None or known[1] > distance:
            decided[inherited.source_case_id] = (inherited.source_case, distance)
    return _NearCopies(
        decided=sorted(
            decided.values(),
            key=lambda pair: (pair[1], -(pair[0].decided_at or now).timestamp()),
        ),
        open_cases=[case for case in cases if case.is_open],
        manipulated=[
            pair for pair in entries if pair[0].bank.kind == HashBank.Kind.KNOWN_MANIPULATED
        ],
        authentic=[pair for pair in entries if pair[0].bank.kind == HashBank.Kind.KNOWN_AUTHENTIC],
    )


def _route(submission: Submission, near: _NearCopies | None) -> _Route:
    if near is None:
        return _route_by_verdict(submission)
    manipulated = bool(near.manipulated)
    if near.decided:
        source, distance = near.decided[0]
        conflict = _conflict(submission, near)
        if conflict:
            return _Route(
                opens=True, reason=conflict, conflict_with=source, known_manipulated=manipulated
            )
        if source.decided_by_id == submission.uploader_id:
            # Inheriting would have the uploader decide their own upload.
            return _Route(
                opens=True,
                reason=(
                    f"A near-copy (PDQ distance {distance}) was "
                    f"{source.get_state_display().lower()} by the uploader of this photo, "
                    "who may not decide their own uploads."
                ),
                known_manipulated=manipulated,
            )
        return _Route(opens=False, inherit=(source, distance))
    if manipulated:
        entry, distance = near.manipulated[0]
        return _Route(
            opens=True,
            reason=f"Matches {_entry_text(entry)} (PDQ distance {distance}).",
            known_manipulated=True,
        )
    if near.authentic:
        entry, distance = near.authentic[0]
        if submission.verdict != Submission.Verdict.FAKE:
            return _Route(opens=False)
        return _Route(
            opens=True,
            reason=(
                f"Matches {_entry_text(entry)} (PDQ distance {distance}), yet the model finds "
                "it likely manipulated."
            ),
        )
    return _route_by_verdict(submission)


def _route_by_verdict(submission: Submission) -> _Route:
    """Nothing the image matched says otherwise: the model's verdict decides."""
    if submission.verdict in FLAGGED_VERDICTS:
        return _Route(opens=True)
    if submission.verdict == Submission.Verdict.REAL and sampled(settings.QA_SAMPLE_RATE):
        return _Route(opens=True, kind=ReviewCase.Kind.QA)
    return _Route(opens=False)


def _conflict(submission: Submission, near: _NearCopies) -> str:
    """Why the decision on the near-copies cannot simply be inherited, or ''."""
    source, distance = near.decided[0]
    states = {case.state for case, _ in near.decided}
    if len(states) > 1:
        return "Near-copies of this image were decided both ways (confirmed and cleared)."
    copy = f"a near-copy (PDQ distance {distance})"
    if source.state == ReviewCase.State.CONFIRMED:
        if submission.verdict == Submission.Verdict.REAL:
            return f"The model found no manipulation, but {copy} was confirmed manipulated."
        if near.authentic:
            entry = _entry_text(near.authentic[0][0])
            return f"The image matches {entry}, but {copy} was confirmed manipulated."
    else:
        if submission.verdict == Submission.Verdict.FAKE:
            return f"The model finds it likely manipulated, but {copy} was cleared as authentic."
        if near.manipulated:
            entry = _entry_text(near.manipulated[0][0])
            return f"The image matches {entry}, but {copy} was cleared as authentic."
    return ""


def _entry_text(entry: HashBankEntry) -> str:
    label = f" ({entry.label})" if entry.label else ""
    return (
        f"an entry{label} of the {entry.bank.get_kind_display().lower()} bank “{entry.bank.name}”"
    )


def _case_create(
    submission: Submission,
    *,
    kind: ReviewCase.Kind = ReviewCase.Kind.FLAGGED,
    reason: str = "",
    conflict_with: ReviewCase | None = None,
    top: bool = False,
    actor: User | None = None,
    note: str = "",
) -> ReviewCase:
    now = timezone.now()
    try:
        # A savepoint: if a concurrent call opened the case first, only this insert rolls
        # back, not the caller's transaction.
        with transaction.atomic():
            case = ReviewCase.objects.create(
                submission=submission,
                kind=kind,
                opened_at=now,
                reason=reason,
                conflict_with=conflict_with,
                known_manipulated_match=top,
                **_snapshot(submission, kind, top=top),
            )
            ReviewEvent.objects.create(
                case=case,
                kind=ReviewEvent.Kind.OPENED,
                actor=actor,
                note="\n\n".join(part for part in (reason, note.strip()) if part),
                created_at=now,
            )
    except IntegrityError:
        return ReviewCase.objects.get(submission=submission)
    return case


def _cluster_join(case: ReviewCase, near_open_cases: list[ReviewCase]) -> None:
    """Put the case in one cluster with the open cases of its near-copies, merging the
    clusters they were in; the oldest case's cluster name is kept."""
    if not near_open_cases:
        return
    oldest = min(near_open_cases, key=lambda other: (other.opened_at, str(other.pk)))
    name = oldest.cluster or oldest.pk
    names = {other.cluster for other in near_open_cases if other.cluster}
    ReviewCase.objects.filter(
        Q(cluster__in=names) | Q(pk__in=[other.pk for other in near_open_cases]) | Q(pk=case.pk)
    ).update(cluster=name)
    case.cluster = name


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
    open_to_user = ReviewCase.objects.filter(review_cases_open_to(user=user), state__in=states)
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
    return _claim_conditional(unclaimed, states=states, user=user, now=now)


def review_case_claim(*, case: ReviewCase, user: User) -> ReviewCase:
    """Claim one chosen case (from the queue); renewing one's own lease writes no event."""
    now = timezone.now()
    review_case_expire_leases(now=now)
    if not ReviewCase.objects.filter(review_cases_open_to(user=user), pk=case.pk).exists():
        raise _refused(case, user=user, decision=Decision.CONFIRM)
    # Only the row's own columns here: a condition through a join would become a subquery,
    # which PostgreSQL does not re-check when a concurrent claim commits first.
    claimable = ReviewCase.objects.filter(
        pk=case.pk, state__in=review_case_states_claimable(user=user)
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
    with transaction.atomic():
        current = ReviewCase.objects.select_for_update().get(pk=case.pk)
        refusal = review_case_refusal(case=current, user=user, decision=decision, now=now)
        if refusal:
            raise ValidationError(refusal, code="refused")
        problem = review_case_note_problem(verdict=current.verdict, decision=decision, note=note)
        if problem:
            raise ValidationError(problem, code="note_required")
        outcome = _decision_outcome(current, user=user, decision=decision, now=now)
        # Who may act was checked on the locked row above; the update repeats only the row's
        # own conditions (a join would turn into a subquery PostgreSQL does not re-check).
        updated = (
            ReviewCase.objects.filter(
                pk=case.pk,
                state__in=review_case_states_actionable(user=user, decision=decision),
            )
            .filter(Q(claimed_by__isnull=True) | Q(claimed_by=user))
            .update(claimed_by=None, lease_expires_at=None, **outcome.fields)
        )
        if not updated:
            raise _refused(case, user=user, decision=decision)
        ReviewEvent.objects.create(
            case_id=case.pk, kind=_DECISION_EVENT[decision], actor=user, note=note, created_at=now
        )
        for kind, system_note in outcome.events:
            ReviewEvent.objects.create(case_id=case.pk, kind=kind, note=system_note, created_at=now)
        if outcome.fields["state"] in ReviewCase.DECIDED_STATES:
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
    """The same decision and note on many cases and their clusters, each with its own event.

    Cases that cannot take it (decided meanwhile, held by someone else, staff-only) are
    reported and skipped; the others are decided. The caller checks the note requirement
    for the whole batch first (clusters included), so that a missing note refuses all of it.
    """
    result = BulkResult()
    for case in cases:
        try:
            settled = review_case_decide_cluster(case=case, user=user, decision=decision, note=note)
        except ValidationError as error:
            result.refused.append((case, " ".join(error.messages)))
        else:
            result.changed.extend(settled.changed)
            result.refused.extend(settled.refused)
    return result


def review_case_decide_cluster(
    *, case: ReviewCase, user: User, decision: Decision, note: str = ""
) -> BulkResult:
    """Decide a case and every other open case of its cluster (its pending near-copies).

    Each case gets its own event, whose note says that one decision settled the cluster.
    The case itself must take the decision (ValidationError otherwise, nothing decided); a
    near-copy that cannot (the moderator's own upload, held by someone else, staff-only) is
    skipped and reported. A note owed by any of them is owed for all.
    """
    cluster = ReviewCase.objects.values_list("cluster", flat=True).get(pk=case.pk)
    members = (
        list(
            ReviewCase.objects.filter(cluster=cluster, state__in=ReviewCase.OPEN_STATES)
            .exclude(pk=case.pk)
            .select_related("submission", "claimed_by")
            .order_by("opened_at", "id")
        )
        if cluster
        else []
    )
    if not members:
        return BulkResult(
            changed=[review_case_decide(case=case, user=user, decision=decision, note=note)]
        )
    for member in (case, *members):
        problem = review_case_note_problem(verdict=member.verdict, decision=decision, note=note)
        if problem:
            raise ValidationError(
                f"{problem} (It applies to every near-copy in the cluster.)", code="note_required"
            )
    together = (
        f"One decision for {len(members) + 1} near-identical images pending together "
        f"(cluster decided from case {case.pk})."
    )
    shared = "\n\n".join(part for part in (note.strip(), together) if part)
    first = review_case_decide(case=case, user=user, decision=decision, note=shared)
    result = _each_case(
        members,
        lambda member: review_case_decide(case=member, user=user, decision=decision, note=shared),
    )
    result.changed.insert(0, first)
    return result


def review_case_reopen(*, case: ReviewCase, user: User, note: str = "") -> ReviewCase:
    """Send a decided case back to the queue (an admin action), e.g. after a re-analysis.

    The snapshot is taken again from the submission's current analysis; the earlier
    decision stays in the event history.
    """
    now = timezone.now()
    with transaction.atomic():
        submission = Submission.objects.get(pk=case.submission_id)
        current = ReviewCase.objects.values("kind", "known_manipulated_match").get(pk=case.pk)
        snapshot = (
            _snapshot(
                submission,
                ReviewCase.Kind(current["kind"]),
                top=current["known_manipulated_match"],
            )
            if submission.verdict in VERDICTS
            else {}
        )
        reopened = ReviewCase.objects.filter(
            pk=case.pk, state__in=ReviewCase.DECIDED_STATES
        ).update(
            state=ReviewCase.State.PENDING,
            decided_by=None,
            decided_at=None,
            claimed_by=None,
            lease_expires_at=None,
            # A reopened case is reviewed afresh, double review included.
            review_round=1,
            first_decision="",
            first_decided_by=None,
            second_decision="",
            second_decided_by=None,
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


@dataclass(frozen=True)
class _Outcome:
    fields: dict[str, Any]  # what the decision changes on the case
    events: list[tuple[str, str]] = field(default_factory=list)  # system events: kind, note


def _decision_outcome(
    case: ReviewCase, *, user: User, decision: Decision, now: datetime
) -> _Outcome:
    """What a decision does to a case, double review included."""
    undecided = {"decided_by": None, "decided_at": None}
    if decision == Decision.ESCALATE:
        return _Outcome({"state": ReviewCase.State.ESCALATED, **undecided})
    final = {"state": _DECIDED_STATE[decision], "decided_by": user, "decided_at": now}
    if case.awaiting_second_review:
        second = {"second_decision": decision, "second_decided_by": user}
        if decision == case.first_decision:
            return _Outcome({**final, **second})
        first = Decision(case.first_decision).label.lower()
        return _Outcome(
            {**second, "state": ReviewCase.State.ESCALATED, **undecided},
            [
                (
                    ReviewEvent.Kind.ESCALATED,
                    f"The two reviews disagree (first: {first}; second: "
                    f"{decision.label.lower()}): staff decide.",
                )
            ],
        )
    if case.review_round == 1 and sampled(settings.DOUBLE_REVIEW_RATE):
        return _Outcome(
            {
                "state": ReviewCase.State.PENDING,
                "review_round": 2,
                "first_decision": decision,
                "first_decided_by": user,
            },
            [
                (
                    ReviewEvent.Kind.SECOND_REVIEW,
                    "Sampled for a second, independent review: a different moderator decides "
                    "again without seeing this decision.",
                )
            ],
        )
    return _Outcome(final)


def review_case_reopen_inherited(
    *, submission: Submission, user: User, note: str = ""
) -> ReviewCase:
    """Give a submission that inherited a near-copy's outcome a review of its own: a case
    opens in the queue, and its outcome is that case's from then on."""
    inherited = (
        InheritedOutcome.objects.filter(submission=submission).select_related("source_case").first()
    )
    if inherited is None:
        raise ValidationError("This photo did not inherit an outcome.", code="not_inherited")
    if ReviewCase.objects.filter(submission=submission).exists():
        raise ValidationError("This photo already has a case of its own.", code="has_case")
    source = inherited.source_case
    reason = (
        f"Reopened by {user.get_username()}: the outcome "
        f"({source.get_state_display().lower()}) had been inherited from case {source.pk}, "
        f"a near-copy at PDQ distance {inherited.distance}."
    )
    with transaction.atomic():
        near = _near_copies_record(submission)
        case = _case_create(submission, reason=reason, actor=user, note=note)
        if near is not None:
            _cluster_join(case, near.open_cases)
    return case


@dataclass(frozen=True)
class BankImport:
    added: int
    already_there: int


def hash_bank_import(*, bank: HashBank, text: str, user: User | None) -> BankImport:
    """Add the hashes of a text to a bank: one 64-hex-digit PDQ hash per line, optionally
    followed by a comma and a label; blank lines and lines starting with # are skipped.

    All or nothing: a line that is not a hash refuses the whole text (ValidationError that
    names the lines). Hashes the bank already holds keep their label.
    """
    rows: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pdq, _, label = line.partition(",")
        try:
            value = pdq_hex_normalise(pdq)
        except ValueError:
            problems.append(number)
            continue
        if len(label.strip()) > BANK_LABEL_MAX_LENGTH:
            problems.append(number)
            continue
        rows.setdefault(value, label.strip())
    if problems:
        shown = ", ".join(str(number) for number in problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValidationError(
            f"Not a PDQ hash (64 hexadecimal digits, then optionally a comma and a label) "
            f"on line {shown}{more}; nothing was imported.",
            code="invalid_line",
        )
    with transaction.atomic():
        present = set(
            HashBankEntry.objects.filter(bank=bank, pdq__in=list(rows)).values_list(
                "pdq", flat=True
            )
        )
        now = timezone.now()
        HashBankEntry.objects.bulk_create(
            [
                HashBankEntry(bank=bank, pdq=pdq, label=label, added_by=user, added_at=now)
                for pdq, label in rows.items()
                if pdq not in present
            ]
        )
    return BankImport(added=len(rows) - len(present), already_there=len(present))


def hash_bank_add_from_case(
    *, case: ReviewCase, bank: HashBank, user: User, label: str = ""
) -> HashBankEntry:
    """Put the image of a case confirmed manipulated into a `known manipulated` bank, with an
    `added_to_bank` event on the case."""
    refusal = hash_bank_add_refusal(case=case, bank=bank, user=user)
    if refusal:
        raise ValidationError(refusal, code="refused")
    pdq = case.submission.pdq
    assert pdq is not None  # the refusal covers photos without a hash
    label = " ".join(label.split()) or f"case {case.pk}"
    now = timezone.now()
    with transaction.atomic():
        entry, created = HashBankEntry.objects.get_or_create(
            bank=bank,
            pdq=pdq,
            defaults={"label": label, "added_by": user, "added_at": now, "source_case": case},
        )
        if not created:
            raise ValidationError(f"“{bank.name}” already holds this image.", code="present")
        ReviewEvent.objects.create(
            case=case,
            kind=ReviewEvent.Kind.ADDED_TO_BANK,
            actor=user,
            note=f"Added to the hash bank “{bank.name}” as “{label}”.",
            created_at=now,
        )
    return entry


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


def _snapshot(
    submission: Submission, kind: ReviewCase.Kind, *, top: bool = False
) -> dict[str, Any]:
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
        (TOP_PRIORITY if top else 0)
        + round(100 * fake_probability)
        + min(_FACE_WEIGHT * max(judged_faces - 1, 0), _FACE_CAP)
        + min(_RECORD_WEIGHT * confirmed_fakes, _RECORD_CAP)
    )
    if kind == ReviewCase.Kind.QA:
        # Quality checks come after every case the model flagged.
        priority = 0
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
    unclaimed: QuerySet[ReviewCase], *, states: tuple[str, ...], user: User, now: datetime
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
                # The row's own columns only (see review_case_claim).
                claimed = ReviewCase.objects.filter(
                    pk=case_id, state__in=states, claimed_by__isnull=True
                ).update(claimed_by=user, lease_expires_at=_lease_end(now))
                if claimed:
                    ReviewEvent.objects.create(
                        case_id=case_id, kind=ReviewEvent.Kind.CLAIMED, actor=user, created_at=now
                    )
                    return ReviewCase.objects.get(pk=case_id)


def _refused(case: ReviewCase, *, user: User, decision: Decision) -> ValidationError:
    current = ReviewCase.objects.get(pk=case.pk)
    message = review_case_refusal(case=current, user=user, decision=decision)
    return ValidationError(message or "This case changed meanwhile; try again.", code="refused")
