"""What moderators see: the queue, a case page and the metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from detection.models import Submission
from moderation import selectors, services
from moderation.models import Decision, ReviewCase
from moderation.tests.factories import FaceFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db


def _age(case: ReviewCase, **delta: float) -> None:
    ReviewCase.objects.filter(pk=case.pk).update(opened_at=timezone.now() - timedelta(**delta))


def _queue(client: Client, **params: str | int) -> list[ReviewCase]:
    response = client.get(reverse("moderation:queue"), params)
    assert response.status_code == 200
    return list(response.context["page"].object_list)


def test_queue_lists_open_cases_by_priority_then_age(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    young_high = make_case(fake_probability=0.9)
    old_low = make_case(fake_probability=0.6)
    young_low = make_case(fake_probability=0.6)
    _age(old_low, hours=5)
    decided = make_case(fake_probability=0.99)
    services.review_case_decide(case=decided, user=moderator, decision=Decision.CONFIRM)
    client.force_login(moderator)
    assert _queue(client) == [young_high, old_low, young_low]


def test_queue_filters_by_state_verdict_probability_and_age(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    fake = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.92)
    uncertain = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.42)
    old = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.75)
    _age(old, days=2)
    cleared = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.35)
    services.review_case_decide(case=cleared, user=moderator, decision=Decision.CLEAR)
    services.review_case_claim(case=fake, user=other_moderator)
    client.force_login(moderator)
    assert _queue(client, verdict="uncertain") == [uncertain]
    assert _queue(client, min_probability=70, max_probability=95) == [fake, old]
    assert _queue(client, age="gt24h") == [old]
    assert _queue(client, age="lt1h") == [fake, uncertain]
    assert _queue(client, state="in_review") == [fake]
    assert _queue(client, state="pending") == [old, uncertain]
    assert _queue(client, state="cleared") == [cleared]
    assert len(_queue(client, state="all")) == 4


def test_queue_with_inverted_probability_bounds_shows_the_error(
    client: Client, moderator: User
) -> None:
    client.force_login(moderator)
    response = client.get(
        reverse("moderation:queue"), {"min_probability": 80, "max_probability": 20}
    )
    assert response.status_code == 400
    assert "lower probability bound is above the upper one" in response.content.decode()


def test_queue_shows_counts_per_state_age_and_blurred_thumbnails(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    pending = make_case()
    _age(pending, hours=3)
    claimed = make_case()
    services.review_case_claim(case=claimed, user=staff)
    escalated = make_case()
    services.review_case_decide(
        case=escalated, user=moderator, decision=Decision.ESCALATE, note="x"
    )
    confirmed = make_case()
    services.review_case_decide(case=confirmed, user=moderator, decision=Decision.CONFIRM)
    client.force_login(moderator)
    response = client.get(reverse("moderation:queue"))
    assert response.context["counts"] == {
        "pending": 1,
        "in_review": 1,
        "escalated": 1,
        "confirmed": 1,
        "cleared": 0,
    }
    html = response.content.decode()
    assert 'class="blurred" data-blur-scope' in html
    assert reverse("detection:submission-thumbnail", args=[pending.submission_id]) in html
    assert "3\xa0hours" in html
    assert 'data-blur-toggle data-shortcut="b"' in html
    assert "<kbd>n</kbd> Next case" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_case_page_shows_image_faces_model_history_and_shortcuts(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(faces=2, model_version="resnet@abc123")
    services.review_case_claim(case=case, user=moderator)
    client.force_login(moderator)
    response = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk}))
    html = response.content.decode()
    sid = case.submission_id
    assert reverse("detection:submission-overlay", args=[sid]) in html
    for index in (0, 1):
        assert reverse("detection:face-crop", args=[sid, index]) in html
        assert reverse("detection:face-heatmap", args=[sid, index]) in html
    assert "resnet@abc123" in html and "Untrained model" not in html
    assert [event.kind for event in response.context["events"]] == ["opened", "claimed"]
    for key in ("c", "a", "e", "r", "n", "b"):
        assert f'data-shortcut="{key}"' in html
        assert f"<kbd>{key}</kbd>" in html
    assert 'class="blurred" data-blur-scope' in html


def test_case_page_warns_when_the_model_was_untrained(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(model_trained=False)
    client.force_login(moderator)
    html = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk})).content
    assert b'id="untrained-warning"' in html


def test_case_page_marks_which_actions_owe_a_note(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.95)
    client.force_login(moderator)
    response = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk}))
    owing = {action["decision"]: action["needs_note"] for action in response.context["actions"]}
    assert owing == {Decision.CONFIRM: False, Decision.CLEAR: True, Decision.ESCALATE: True}


def test_case_page_shows_the_uploaders_other_submissions_and_same_image_decisions(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, uploader: User
) -> None:
    earlier = make_case()
    services.review_case_decide(case=earlier, user=moderator, decision=Decision.CONFIRM)
    unflagged = SubmissionFactory.create(
        uploader=uploader, verdict=Submission.Verdict.REAL, fake_probability=0.1
    )
    case = make_case()
    # Somebody else uploaded the very same bytes, and a moderator cleared them.
    twin = SubmissionFactory.create(
        uploader=UserFactory.create(), sha256=case.submission.sha256, fake_probability=0.6
    )
    FaceFactory.create(submission=twin, index=0)
    twin_case = services.review_case_open(submission=twin)
    assert twin_case is not None
    services.review_case_decide(case=twin_case, user=moderator, decision=Decision.CLEAR, note="ok")

    client.force_login(moderator)
    response = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk}))
    others = {row.submission.pk: row for row in response.context["other_submissions"]}
    assert set(others) == {earlier.submission_id, unflagged.pk}
    assert others[earlier.submission_id].outcome == selectors.submission_outcome(
        submission=earlier.submission
    )
    assert others[unflagged.pk].outcome is None
    assert list(response.context["same_image"]) == [twin_case]
    html = response.content.decode()
    assert "confirmed manipulated" in html and "not reviewed" in html
    assert reverse("moderation:case-detail", kwargs={"case_id": twin_case.pk}) in html


def test_staff_see_escalated_cases_they_can_decide_and_moderators_see_why_they_cannot(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    case = make_case()
    services.review_case_decide(case=case, user=moderator, decision=Decision.ESCALATE, note="x")
    url = reverse("moderation:case-detail", kwargs={"case_id": case.pk})
    client.force_login(moderator)
    assert "only staff decide it" in client.get(url).content.decode()
    client.force_login(staff)
    refusals = [action["refusal"] for action in client.get(url).context["actions"]]
    assert refusals[:2] == [None, None]


def test_metrics_count_the_queue_and_the_decisions(
    client: Client,
    make_case: Callable[..., ReviewCase],
    moderator: User,
    other_moderator: User,
) -> None:
    waiting = make_case()
    _age(waiting, hours=6)
    make_case()
    fast = make_case(verdict=Submission.Verdict.FAKE)
    _age(fast, minutes=10)
    services.review_case_decide(case=fast, user=moderator, decision=Decision.CONFIRM)
    slow = make_case(verdict=Submission.Verdict.FAKE, fake_probability=0.8)
    _age(slow, minutes=30)
    services.review_case_decide(case=slow, user=other_moderator, decision=Decision.CLEAR, note="n")
    unsure = make_case(verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.4)
    _age(unsure, minutes=50)
    services.review_case_decide(case=unsure, user=moderator, decision=Decision.CONFIRM)

    client.force_login(moderator)
    response = client.get(reverse("moderation:metrics"))
    assert response.status_code == 200
    metrics = response.context["metrics"]
    assert metrics.awaiting == 2
    assert timedelta(hours=6) <= metrics.oldest_pending_age < timedelta(hours=6, minutes=1)
    assert timedelta(minutes=30) <= metrics.median_time_to_decision < timedelta(minutes=31)
    today = timezone.localdate()
    assert [
        (r.day, r.moderator, r.confirmed, r.cleared, r.total) for r in metrics.per_moderator_per_day
    ] == [
        (today, "moderator", 2, 0, 2),
        (today, "other-moderator", 0, 1, 1),
    ]
    verdicts = {
        row.verdict: (row.confirmed, row.cleared, row.escalated)
        for row in metrics.verdict_decisions
    }
    assert verdicts == {
        "fake": (1, 1, 0),
        "uncertain": (1, 0, 0),
        "real": (0, 0, 0),
        "inconclusive": (0, 0, 0),
    }
    html = response.content.decode()
    assert "6 h 0 min" in html and "30 min" in html


def test_cases_a_moderator_cannot_decide_cannot_be_ticked(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    escalated = make_case(fake_probability=0.9)
    services.review_case_decide(
        case=escalated, user=moderator, decision=Decision.ESCALATE, note="unsure"
    )
    own = make_case(uploader=moderator, fake_probability=0.8)
    free = make_case(fake_probability=0.7)
    client.force_login(moderator)
    html = client.get(reverse("moderation:queue")).content.decode()
    for case, disabled in ((escalated, True), (own, True), (free, False)):
        box = re.search(rf'<input type="checkbox" name="cases" value="{case.pk}"[^>]*>', html)
        assert box is not None
        assert ("disabled" in box.group(0)) is disabled, case
    client.force_login(staff)
    html = client.get(reverse("moderation:queue")).content.decode()
    box = re.search(rf'<input type="checkbox" name="cases" value="{escalated.pk}"[^>]*>', html)
    assert box is not None and "disabled" not in box.group(0), "staff decide escalations"


def test_a_refused_bulk_decision_keeps_the_selection(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    first, second = make_case(fake_probability=0.9), make_case(fake_probability=0.8)
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:bulk-decide"),
        {"cases": [str(first.pk), str(second.pk)], "decision": Decision.CLEAR, "note": ""},
        follow=True,
    )
    html = response.content.decode()
    assert "need a note" in html
    for case in (first, second):
        box = re.search(rf'<input type="checkbox" name="cases" value="{case.pk}"[^>]*>', html)
        assert box is not None and "checked" in box.group(0)
