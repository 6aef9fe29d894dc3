"""Moderation policy: who reviews, which cases they may take and decide, in what order, and
why an action is refused. Pure rules over users and cases; the services enforce them and
the pages explain them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from detection.models import Submission
from moderation.models import Decision, HashBank, ReviewCase

# The permission of the Moderators group (staff review without it).
REVIEW_CASES = "moderation.review_cases"
NOTE_REQUIRED = "A note is required when the decision goes against the model's verdict."
ESCALATION_NOTE_REQUIRED = "Tell staff why you escalate this case."
OWN_UPLOAD = "You uploaded this photo: another moderator must decide it."
OWN_FIRST_REVIEW = "You made the first review of this case: a different moderator makes the second."
# Staff keep the hash banks; others need this permission to add to one from a case page.
ADD_BANK_ENTRY = "moderation.add_hashbankentry"


def user_is_reviewer(*, user: User | AnonymousUser) -> bool:
    """Moderators (the group's permission) and staff work the queue."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(REVIEW_CASES)))


def review_case_note_required(*, verdict: str, decision: str) -> bool:
    """A note is owed when overruling the model's verdict, and to staff on escalation."""
    return (
        (decision == Decision.CONFIRM and verdict == Submission.Verdict.REAL)
        or (decision == Decision.CLEAR and verdict == Submission.Verdict.FAKE)
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


def review_cases_open_to(*, user: User) -> Q:
    """The cases this user may take at all: never one about their own upload (a conflict of
    interest, staff included), never the second review of one they reviewed first."""
    own_first_review = Q(
        review_round=2, state=ReviewCase.State.PENDING, first_decided_by_id=user.pk
    )
    return ~Q(submission__uploader_id=user.pk) & ~own_first_review


def sampled(rate: float) -> bool:
    """True for about `rate` of the calls (QA sampling, double review)."""
    return rate >= 1 or (rate > 0 and _chance.random() < rate)


_chance = secrets.SystemRandom()


def review_case_refusal(
    *, case: ReviewCase, user: User, decision: str, now: datetime | None = None
) -> str | None:
    """Why this user cannot take this decision on this case now, or None if they can."""
    if case.submission.uploader_id == user.pk:
        return OWN_UPLOAD
    if case.awaiting_second_review and case.first_decided_by_id == user.pk:
        return OWN_FIRST_REVIEW
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


def review_case_note_problem(*, verdict: str, decision: str, note: str) -> str | None:
    """The message for a decision that owes a note and has none, else None."""
    if note.strip() or not review_case_note_required(verdict=verdict, decision=decision):
        return None
    return ESCALATION_NOTE_REQUIRED if decision == Decision.ESCALATE else NOTE_REQUIRED


def user_may_add_to_banks(*, user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(ADD_BANK_ENTRY)))


def hash_bank_add_refusal(*, case: ReviewCase, bank: HashBank, user: User) -> str | None:
    """Why this user cannot put this case's image into this bank, or None if they can.

    Only images moderators confirmed manipulated, into `known manipulated` banks: a bank
    entry routes every future copy of the image, so it follows a human decision.
    """
    if not user_may_add_to_banks(user=user):
        return "Only staff add images to hash banks."
    if case.submission.uploader_id == user.pk:
        return "You uploaded this photo: another member of staff must add it to a bank."
    if case.state != ReviewCase.State.CONFIRMED:
        return "Only a case confirmed manipulated can be added to a hash bank."
    if bank.kind != HashBank.Kind.KNOWN_MANIPULATED:
        return "A confirmed manipulated image belongs in a known-manipulated bank."
    if case.submission.pdq is None:
        return "This photo has no PDQ hash: it was uploaded before hashing began."
    return None
