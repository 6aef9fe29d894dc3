"""Quality checks of unflagged photos, independent second reviews, and what they measure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from detection.models import Submission
from moderation import selectors, services
from moderation.metrics import moderation_metrics
from moderation.models import Decision, HashBank, ReviewCase, ReviewEvent
from moderation.rules import OWN_FIRST_REVIEW
from moderation.tests.factories import ModeratorFactory, SubmissionFactory

pytestmark = pytest.mark.django_db


def unflagged(uploader: User, probability: float = 0.05) -> Submission:
    submission: Submission = SubmissionFactory.create(
        uploader=uploader, verdict=Submission.Verdict.REAL, fake_probability=probability
    )
    return submission


def test_no_quality_check_without_sampling(uploader: User) -> None:
    assert services.review_case_open(submission=unflagged(uploader)) is None


def test_sampled_unflagged_photo_opens_a_quality_check_after_every_flagged_case(
    settings: Any, make_case: Callable[..., ReviewCase], uploader: User, moderator: User
) -> None:
    settings.QA_SAMPLE_RATE = 1
    flagged = make_case(fake_probability=0.35, verdict=Submission.Verdict.UNCERTAIN)
    check = services.review_case_open(submission=unflagged(uploader, probability=0.25))
    assert check is not None and check.kind == ReviewCase.Kind.QA
    assert check.priority < flagged.priority
    assert services.review_case_claim_next(user=moderator) == flagged


def test_photos_whose_outcome_a_match_settles_are_not_quality_checks(
    settings: Any, uploader: User, moderator: User
) -> None:
    """A copy of a decided image inherits its outcome, and a known-authentic bank match is
    already known: neither is a sample of what the model alone lets through."""
    settings.QA_SAMPLE_RATE = 1
    pdq = "f" * 32 + "0" * 32
    decided = SubmissionFactory.create(
        pdq=pdq, pdq_quality=100, verdict=Submission.Verdict.FAKE, fake_probability=0.9
    )
    case = services.review_case_open(submission=decided)
    assert case is not None
    services.review_case_decide(case=case, user=moderator, decision=Decision.CLEAR, note="ok")
    copy = SubmissionFactory.create(
        uploader=uploader, pdq=pdq, pdq_quality=100, verdict=Submission.Verdict.REAL
    )
    assert services.review_case_open(submission=copy) is None

    authentic = HashBank.objects.create(name="originals", kind=HashBank.Kind.KNOWN_AUTHENTIC)
    services.hash_bank_import(bank=authentic, text="0" * 32 + "f" * 32, user=None)
    banked = SubmissionFactory.create(
        pdq="0" * 32 + "f" * 32, pdq_quality=100, verdict=Submission.Verdict.REAL
    )
    assert services.review_case_open(submission=banked) is None


def test_deciding_a_quality_check_moves_the_false_negative_estimate(
    settings: Any, client: Client, uploader: User, moderator: User
) -> None:
    settings.QA_SAMPLE_RATE = 1
    checks = [services.review_case_open(submission=unflagged(uploader)) for _ in range(2)]
    assert all(check is not None for check in checks)
    before = moderation_metrics().false_negative
    assert (before.share, before.cases) == (None, 0)

    first, second = (check for check in checks if check is not None)
    services.review_case_decide(
        case=first, user=moderator, decision=Decision.CONFIRM, note="a swap the model missed"
    )
    services.review_case_decide(case=second, user=moderator, decision=Decision.CLEAR)
    after = moderation_metrics().false_negative
    assert (after.share, after.cases) == (0.5, 2)

    client.force_login(moderator)
    page = client.get(reverse("moderation:metrics")).content.decode()
    assert "50 %" in page and "2 decided checks" in page


def test_a_sampled_decision_waits_for_a_second_independent_moderator(
    settings: Any,
    make_case: Callable[..., ReviewCase],
    moderator: User,
    other_moderator: User,
    client: Client,
) -> None:
    settings.DOUBLE_REVIEW_RATE = 1
    case = make_case()
    services.review_case_decide(
        case=case, user=moderator, decision=Decision.CONFIRM, note="blend line"
    )
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING and case.awaiting_second_review
    outcome = selectors.submission_outcome(submission=case.submission)
    assert outcome is not None and outcome.state == "pending_review"

    # The first moderator cannot take the second review, nor be offered it.
    with pytest.raises(ValidationError, match=OWN_FIRST_REVIEW):
        services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    assert services.review_case_claim_next(user=moderator) is None

    # The second moderator sees no trace of the first decision.
    client.force_login(other_moderator)
    page = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk}))
    assert "blend line" not in page.content.decode()
    log = client.get(reverse("moderation:decision-log")).content.decode()
    assert "blend line" not in log

    services.review_case_decide(case=case, user=other_moderator, decision=Decision.CONFIRM)
    case.refresh_from_db()
    assert (case.state, case.decided_by) == (ReviewCase.State.CONFIRMED, other_moderator)
    kinds = list(case.events.values_list("kind", flat=True))
    assert kinds == ["opened", "confirmed", "second_review", "confirmed"]


def test_disagreeing_reviews_go_to_staff(
    settings: Any, make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    settings.DOUBLE_REVIEW_RATE = 1
    case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    services.review_case_decide(case=case, user=other_moderator, decision=Decision.CLEAR)
    case.refresh_from_db()
    assert case.state == ReviewCase.State.ESCALATED and case.decided_by is None
    escalation = case.events.filter(kind=ReviewEvent.Kind.ESCALATED).get()
    assert escalation.actor is None
    assert "first: confirm manipulated; second: mark authentic" in escalation.note


def test_agreement_and_kappa_per_pair_of_moderators(
    settings: Any, make_case: Callable[..., ReviewCase]
) -> None:
    settings.DOUBLE_REVIEW_RATE = 1
    ann, bob = ModeratorFactory.create(username="ann"), ModeratorFactory.create(username="bob")
    # Four cases reviewed by both: they agree on three (two confirmations, one clearing).
    votes = [
        (Decision.CONFIRM, Decision.CONFIRM),
        (Decision.CONFIRM, Decision.CONFIRM),
        (Decision.CLEAR, Decision.CLEAR),
        (Decision.CONFIRM, Decision.CLEAR),
    ]
    for first, second in votes:
        case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
        services.review_case_decide(case=case, user=ann, decision=first)
        services.review_case_decide(case=case, user=bob, decision=second)
    (pair,) = moderation_metrics().agreement
    assert (pair.first, pair.second, pair.cases) == ("ann", "bob", 4)
    assert pair.agreement == pytest.approx(0.75)
    # Ann confirms 3/4, Bob 2/4: chance agreement 3/4*2/4 + 1/4*2/4 = 0.5.
    assert pair.kappa == pytest.approx((0.75 - 0.5) / (1 - 0.5))
