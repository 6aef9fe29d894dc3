"""Nobody decides a case about their own upload: not a moderator, not staff, not in bulk."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from moderation import services
from moderation.models import Decision, ReviewCase
from moderation.rules import OWN_UPLOAD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("reviewer", ["moderator", "staff"])
def test_a_reviewer_cannot_decide_or_claim_a_case_about_their_own_upload(
    make_case: Callable[..., ReviewCase], request: pytest.FixtureRequest, reviewer: str
) -> None:
    user: User = request.getfixturevalue(reviewer)
    case = make_case(uploader=user)
    for decision in Decision:
        with pytest.raises(ValidationError, match=OWN_UPLOAD):
            services.review_case_decide(case=case, user=user, decision=decision, note="mine")
    with pytest.raises(ValidationError, match=OWN_UPLOAD):
        services.review_case_claim(case=case, user=user)
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING and case.claimed_by is None
    assert list(case.events.values_list("kind", flat=True)) == ["opened"]


def test_next_case_skips_the_reviewers_own_uploads(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    own = make_case(uploader=moderator, fake_probability=0.99)
    other = make_case(fake_probability=0.6)
    assert services.review_case_claim_next(user=moderator) == other
    services.review_case_release(case=other, user=moderator)
    services.review_case_decide(case=other, user=other_moderator, decision=Decision.CONFIRM)
    assert services.review_case_claim_next(user=moderator) is None, "only their own is left"
    assert services.review_case_claim_next(user=other_moderator) == own


def test_bulk_decision_skips_own_uploads_and_says_why(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    own = make_case(uploader=moderator, fake_probability=0.9)
    others = make_case(fake_probability=0.8)
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:bulk-decide"),
        {"cases": [str(own.pk), str(others.pk)], "decision": Decision.CONFIRM, "note": ""},
        follow=True,
    )
    page = response.content.decode()
    assert "Confirm manipulated: 1 case(s)." in page
    assert "another moderator must decide it" in page
    assert ReviewCase.objects.get(pk=own.pk).state == ReviewCase.State.PENDING
    assert ReviewCase.objects.get(pk=others.pk).state == ReviewCase.State.CONFIRMED


def test_the_case_page_shows_why_the_decisions_are_refused(
    client: Client, make_case: Callable[..., ReviewCase], staff: User
) -> None:
    case = make_case(uploader=staff)
    client.force_login(staff)
    page = client.get(reverse("moderation:case-detail", kwargs={"case_id": case.pk}))
    assert "another moderator must decide it" in page.content.decode()
