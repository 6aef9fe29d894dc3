"""Decisions: each one changes the outcome, writes exactly one event, then the next case opens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from detection.models import Submission
from moderation import selectors, services
from moderation.models import Decision, ReviewCase, ReviewEvent

pytestmark = pytest.mark.django_db


def _decide_url(case: ReviewCase) -> str:
    return reverse("moderation:case-decide", kwargs={"case_id": case.pk})


@pytest.mark.parametrize(
    ("decision", "state", "event", "outcome"),
    [
        (Decision.CONFIRM, "confirmed", "confirmed", "confirmed_manipulated"),
        (Decision.CLEAR, "cleared", "cleared", "cleared"),
        (Decision.ESCALATE, "escalated", "escalated", "pending_review"),
    ],
)
def test_each_decision_updates_the_outcome_and_writes_exactly_one_event(
    client: Client,
    make_case: Callable[..., ReviewCase],
    moderator: User,
    decision: Decision,
    state: str,
    event: str,
    outcome: str,
) -> None:
    case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.45)
    client.force_login(moderator)
    client.post(reverse("moderation:next-case"))
    events_before = case.events.count()
    response = client.post(_decide_url(case), {"decision": decision, "note": "looked closely"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == state
    assert case.claimed_by is None and case.lease_expires_at is None
    assert case.events.count() == events_before + 1
    written = case.events.latest("id")
    assert (written.kind, written.actor, written.note) == (event, moderator, "looked closely")
    seen = selectors.submission_outcome(submission=case.submission)
    assert seen is not None and seen.state == outcome
    if decision == Decision.ESCALATE:
        assert case.decided_at is None and seen.decided_at is None
    else:
        assert case.decided_by == moderator and seen.decided_at == case.decided_at


def test_after_a_decision_the_next_case_opens_already_claimed(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    first = make_case(fake_probability=0.95)
    second = make_case(fake_probability=0.7)
    client.force_login(moderator)
    client.post(reverse("moderation:next-case"))
    response = client.post(_decide_url(first), {"decision": Decision.CONFIRM, "note": ""})
    assert response["Location"] == reverse("moderation:case-detail", kwargs={"case_id": second.pk})
    assert ReviewCase.objects.get(pk=second.pk).claimed_by == moderator


def test_after_the_last_decision_the_queue_opens_with_a_message(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    client.force_login(moderator)
    response = client.post(_decide_url(case), {"decision": Decision.CONFIRM}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("moderation:queue")
    assert "queue is empty" in response.content.decode()


def test_marking_a_fake_verdict_case_authentic_requires_a_note(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.97)
    client.force_login(moderator)
    response = client.post(_decide_url(case), {"decision": Decision.CLEAR, "note": "  "})
    assert response.status_code == 400
    assert "A note is required" in response.content.decode()
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING
    assert list(case.events.values_list("kind", flat=True)) == [ReviewEvent.Kind.OPENED]
    response = client.post(
        _decide_url(case), {"decision": Decision.CLEAR, "note": "a mirror reflection"}
    )
    assert response.status_code == 302
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.CLEARED


def test_confirming_a_case_the_model_now_calls_authentic_requires_a_note(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
    submission = case.submission
    submission.verdict, submission.fake_probability = Submission.Verdict.REAL, 0.1
    submission.save()
    case = services.review_case_open(submission=submission) or case
    assert case.verdict == Submission.Verdict.REAL
    with pytest.raises(ValidationError, match="note is required"):
        services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    services.review_case_decide(
        case=case, user=moderator, decision=Decision.CONFIRM, note="blending seam at the jaw"
    )
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.CONFIRMED


@pytest.mark.parametrize("decision", [Decision.CONFIRM, Decision.CLEAR])
def test_uncertain_verdict_decisions_need_no_note(
    make_case: Callable[..., ReviewCase], moderator: User, decision: Decision
) -> None:
    case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
    services.review_case_decide(case=case, user=moderator, decision=decision)
    assert ReviewCase.objects.get(pk=case.pk).state != ReviewCase.State.PENDING


def test_escalation_requires_a_note_for_staff(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    with pytest.raises(ValidationError, match="Tell staff why you escalate this case"):
        services.review_case_decide(case=case, user=moderator, decision=Decision.ESCALATE)


def test_only_staff_decide_an_escalated_case(
    make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    case = make_case()
    services.review_case_decide(
        case=case, user=moderator, decision=Decision.ESCALATE, note="public figure"
    )
    with pytest.raises(ValidationError, match="only staff"):
        services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    services.review_case_decide(case=case, user=staff, decision=Decision.CONFIRM)
    case.refresh_from_db()
    assert case.state == ReviewCase.State.CONFIRMED and case.decided_by == staff


def test_a_decided_case_cannot_be_decided_again(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    case = make_case()
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    client.force_login(other_moderator)
    response = client.post(_decide_url(case), {"decision": Decision.CLEAR, "note": "no"})
    assert response.status_code == 400
    assert "already decided" in response.content.decode()
    case.refresh_from_db()
    assert case.state == ReviewCase.State.CONFIRMED and case.decided_by == moderator
    assert case.events.filter(kind__in=ReviewEvent.DECISION_KINDS).count() == 1


def test_reopen_sends_a_decided_case_back_with_one_event(
    make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    case = make_case()
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    services.review_case_reopen(case=case, user=staff, note="uploader appealed")
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING
    assert case.decided_by is None and case.decided_at is None
    assert case.events.filter(kind=ReviewEvent.Kind.REOPENED).count() == 1
    outcome = selectors.submission_outcome(submission=case.submission)
    assert outcome is not None and outcome.state == "pending_review"
    with pytest.raises(ValidationError, match="Only a decided case"):
        services.review_case_reopen(case=case, user=staff)


def test_bulk_decision_applies_to_every_free_case_and_skips_the_claimed_one(
    client: Client,
    make_case: Callable[..., ReviewCase],
    moderator: User,
    other_moderator: User,
) -> None:
    free = [make_case(fake_probability=0.9), make_case(fake_probability=0.8)]
    held = make_case(fake_probability=0.7)
    services.review_case_claim(case=held, user=other_moderator)
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:bulk-decide"),
        {
            "cases": [str(case.pk) for case in [*free, held]],
            "decision": Decision.CONFIRM,
            "note": "same face-swap app watermark",
            "filters": "verdict=fake&min_probability=50&bogus=1",
        },
        follow=True,
    )
    assert response.redirect_chain[0][0] == reverse("moderation:queue") + (
        "?verdict=fake&min_probability=50"
    )
    page = response.content.decode()
    assert "Confirm manipulated: 2 case(s)." in page
    assert "Skipped" in page and "other-moderator is reviewing this case" in page
    for case in free:
        case.refresh_from_db()
        assert case.state == ReviewCase.State.CONFIRMED
        assert case.events.filter(kind=ReviewEvent.Kind.CONFIRMED).count() == 1
    held.refresh_from_db()
    assert held.state == ReviewCase.State.PENDING and held.claimed_by == other_moderator


def test_bulk_decision_owing_a_note_decides_nothing(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    fake = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.9)
    uncertain = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:bulk-decide"),
        {"cases": [str(fake.pk), str(uncertain.pk)], "decision": Decision.CLEAR, "note": ""},
        follow=True,
    )
    assert "1 of the selected cases need a note" in response.content.decode()
    assert set(ReviewCase.objects.values_list("state", flat=True)) == {"pending"}
    assert not ReviewEvent.objects.filter(kind=ReviewEvent.Kind.CLEARED).exists()
