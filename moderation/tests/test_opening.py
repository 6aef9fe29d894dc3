"""Opening cases from finished analyses, and the outcome the uploader sees."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from detection.models import Submission
from moderation import selectors, services
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.tests.factories import FaceFactory, SubmissionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("verdict", [Submission.Verdict.FAKE, Submission.Verdict.UNCERTAIN])
def test_flagged_verdict_opens_one_pending_case_with_an_opened_event(verdict: str) -> None:
    submission = SubmissionFactory.create(verdict=verdict, fake_probability=0.6)
    case = services.review_case_open(submission=submission)
    assert case is not None
    assert case.state == ReviewCase.State.PENDING
    assert case.verdict == verdict
    assert list(case.events.values_list("kind", "actor")) == [(ReviewEvent.Kind.OPENED, None)]


def test_authentic_verdict_opens_no_case() -> None:
    submission = SubmissionFactory.create(verdict=Submission.Verdict.REAL, fake_probability=0.1)
    assert services.review_case_open(submission=submission) is None
    assert not ReviewCase.objects.exists()


def test_no_face_result_opens_no_case() -> None:
    submission = SubmissionFactory.create(
        status=Submission.Status.NO_FACE, verdict="", fake_probability=None
    )
    assert services.review_case_open(submission=submission) is None
    assert not ReviewCase.objects.exists()


def test_reanalysis_of_a_pending_case_keeps_one_case_and_refreshes_its_snapshot() -> None:
    submission = SubmissionFactory.create(
        verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4
    )
    first = services.review_case_open(submission=submission)
    submission.verdict, submission.fake_probability = Submission.Verdict.FAKE, 0.95
    submission.save()
    again = services.review_case_open(submission=submission)
    assert again is not None and first is not None and again.pk == first.pk
    assert ReviewCase.objects.count() == 1
    assert again.verdict == Submission.Verdict.FAKE and again.fake_probability == 0.95
    assert again.events.filter(kind=ReviewEvent.Kind.OPENED).count() == 1


def test_reanalysis_does_not_undo_a_human_decision(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(fake_probability=0.9)
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    submission = case.submission
    submission.fake_probability = 0.2
    submission.verdict = Submission.Verdict.UNCERTAIN
    submission.save()
    again = services.review_case_open(submission=submission)
    assert again is not None and again.pk == case.pk
    assert again.state == ReviewCase.State.CONFIRMED
    assert again.fake_probability == 0.9
    assert ReviewCase.objects.count() == 1


def test_priority_rises_with_probability_faces_and_the_uploaders_confirmed_fakes(
    make_case: Callable[..., ReviewCase], moderator: User, uploader: User
) -> None:
    low = make_case(fake_probability=0.55, faces=1)
    high = make_case(fake_probability=0.95, faces=1)
    crowd = make_case(fake_probability=0.55, faces=3)
    assert high.priority > crowd.priority > low.priority
    services.review_case_decide(case=high, user=moderator, decision=Decision.CONFIRM)
    repeat = make_case(fake_probability=0.55, faces=1)
    assert repeat.priority == low.priority + 15
    # Another uploader's record does not count.
    stranger = SubmissionFactory.create(fake_probability=0.55)
    FaceFactory.create(submission=stranger, index=0)
    stranger_case = services.review_case_open(submission=stranger)
    assert stranger_case is not None and stranger_case.priority == low.priority


def test_uploader_sees_no_outcome_without_a_case() -> None:
    submission = SubmissionFactory.create(verdict=Submission.Verdict.REAL, fake_probability=0.1)
    assert selectors.submission_outcome(submission=submission) is None


def test_uploader_sees_pending_review_while_the_case_is_open_or_escalated(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    outcome = selectors.submission_outcome(submission=case.submission)
    assert outcome == selectors.SubmissionOutcome(
        state="pending_review", label="pending review", decided_at=None
    )
    services.review_case_decide(
        case=case, user=moderator, decision=Decision.ESCALATE, note="needs a second look"
    )
    outcome = selectors.submission_outcome(submission=case.submission)
    assert outcome is not None and outcome.state == "pending_review"


@pytest.mark.parametrize(
    ("decision", "state", "label"),
    [
        (Decision.CONFIRM, "confirmed_manipulated", "confirmed manipulated"),
        (Decision.CLEAR, "cleared", "cleared"),
    ],
)
def test_uploader_sees_the_decision_and_when_it_was_made_but_never_the_note(
    make_case: Callable[..., ReviewCase],
    moderator: User,
    decision: Decision,
    state: str,
    label: str,
) -> None:
    case = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.45)
    case = services.review_case_decide(
        case=case, user=moderator, decision=decision, note="internal reasoning"
    )
    outcome = selectors.submission_outcome(submission=case.submission)
    assert outcome == selectors.SubmissionOutcome(
        state=state, label=label, decided_at=case.decided_at
    )
    assert outcome is not None and outcome.decided_at is not None
    assert "internal reasoning" not in repr(outcome)
