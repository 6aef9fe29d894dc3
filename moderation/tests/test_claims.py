"""Next case: exclusive leased claims, one case at a time, and leases that run out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import require_service
from moderation import services
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.tests.factories import ModeratorFactory, StaffFactory

pytestmark = pytest.mark.django_db


def _expire(case: ReviewCase) -> None:
    ReviewCase.objects.filter(pk=case.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_next_case_claims_the_highest_priority_then_the_oldest(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    older_low = make_case(fake_probability=0.6)
    high = make_case(fake_probability=0.95)
    newer_low = make_case(fake_probability=0.6)
    first = services.review_case_claim_next(user=moderator)
    second = services.review_case_claim_next(user=other_moderator)
    assert first is not None and first.pk == high.pk
    assert second is not None and second.pk == older_low.pk
    assert ReviewCase.objects.get(pk=newer_low.pk).claimed_by is None


def test_next_case_claim_lasts_the_configured_lease_and_writes_one_event(
    make_case: Callable[..., ReviewCase], moderator: User, settings: object
) -> None:
    case = make_case()
    before = timezone.now()
    claimed = services.review_case_claim_next(user=moderator)
    assert claimed is not None and claimed.pk == case.pk
    assert claimed.claimed_by == moderator
    assert claimed.lease_expires_at is not None
    lease = claimed.lease_expires_at - before
    assert timedelta(minutes=14, seconds=59) < lease < timedelta(minutes=15, seconds=5)
    assert list(case.events.values_list("kind", "actor")) == [
        (ReviewEvent.Kind.OPENED, None),
        (ReviewEvent.Kind.CLAIMED, moderator.pk),
    ]


def test_lease_length_comes_from_the_setting(
    make_case: Callable[..., ReviewCase], moderator: User, settings: object
) -> None:
    settings.MODERATION_LEASE_MINUTES = 2  # type: ignore[attr-defined]
    make_case()
    claimed = services.review_case_claim_next(user=moderator)
    assert claimed is not None and claimed.lease_expires_at is not None
    assert claimed.lease_expires_at - timezone.now() < timedelta(minutes=2, seconds=1)


def test_a_moderator_holding_a_case_gets_the_same_case_again(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    make_case()
    make_case()
    first = services.review_case_claim_next(user=moderator)
    again = services.review_case_claim_next(user=moderator)
    assert first is not None and again is not None and first.pk == again.pk
    assert ReviewEvent.objects.filter(kind=ReviewEvent.Kind.CLAIMED).count() == 1


def test_next_case_is_none_when_everything_is_claimed_or_decided(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    held = make_case()
    decided = make_case()
    services.review_case_decide(case=decided, user=moderator, decision=Decision.CONFIRM)
    services.review_case_claim(case=held, user=other_moderator)
    assert services.review_case_claim_next(user=moderator) is None


def test_moderators_never_get_escalated_cases_but_staff_get_them_first(
    make_case: Callable[..., ReviewCase], moderator: User, staff: User
) -> None:
    escalated = make_case(fake_probability=0.55)
    services.review_case_decide(
        case=escalated, user=moderator, decision=Decision.ESCALATE, note="legal question"
    )
    ordinary = make_case(fake_probability=0.99)
    other = ModeratorFactory.create()
    got = services.review_case_claim_next(user=other)
    assert got is not None and got.pk == ordinary.pk
    services.review_case_release(case=got, user=other)
    staff_got = services.review_case_claim_next(user=staff)
    assert staff_got is not None and staff_got.pk == escalated.pk


def test_a_claimed_case_cannot_be_decided_by_another_moderator(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    case = make_case()
    services.review_case_claim(case=case, user=moderator)
    with pytest.raises(ValidationError, match="moderator is reviewing this case until"):
        services.review_case_decide(case=case, user=other_moderator, decision=Decision.CONFIRM)
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING and case.claimed_by == moderator
    assert not case.events.filter(kind=ReviewEvent.Kind.CONFIRMED).exists()


def test_release_returns_the_case_with_one_event_and_only_the_holder_may_release(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    case = make_case()
    services.review_case_claim(case=case, user=moderator)
    with pytest.raises(ValidationError, match=r"You do not hold this case\."):
        services.review_case_release(case=case, user=other_moderator)
    services.review_case_release(case=case, user=moderator, note="conflict of interest")
    case.refresh_from_db()
    assert case.claimed_by is None and case.lease_expires_at is None
    released = case.events.get(kind=ReviewEvent.Kind.RELEASED)
    assert released.actor == moderator and released.note == "conflict of interest"


def test_expired_lease_returns_the_case_and_writes_exactly_one_event(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    case = make_case()
    services.review_case_claim_next(user=moderator)
    _expire(case)
    assert services.review_case_expire_leases() == 1
    assert services.review_case_expire_leases() == 0
    case.refresh_from_db()
    assert case.claimed_by is None and case.lease_expires_at is None
    expired = case.events.filter(kind=ReviewEvent.Kind.LEASE_EXPIRED)
    assert expired.count() == 1 and expired.get().actor == moderator
    taken = services.review_case_claim_next(user=other_moderator)
    assert taken is not None and taken.pk == case.pk and taken.claimed_by == other_moderator
    assert list(case.events.values_list("kind", flat=True)) == [
        ReviewEvent.Kind.OPENED,
        ReviewEvent.Kind.CLAIMED,
        ReviewEvent.Kind.LEASE_EXPIRED,
        ReviewEvent.Kind.CLAIMED,
    ]


def test_expired_lease_is_noticed_when_the_queue_is_read(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> None:
    case = make_case()
    services.review_case_claim_next(user=moderator)
    _expire(case)
    client.force_login(other_moderator)
    for _ in range(2):
        page = client.get(reverse("moderation:queue"), {"state": "pending"})
        assert [c.pk for c in page.context["page"].object_list] == [case.pk]
    assert case.events.filter(kind=ReviewEvent.Kind.LEASE_EXPIRED).count() == 1


def test_the_holder_of_an_expired_lease_cannot_release_it_any_more(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    services.review_case_claim_next(user=moderator)
    _expire(case)
    with pytest.raises(ValidationError, match=r"You do not hold this case\."):
        services.review_case_release(case=case, user=moderator)
    assert case.events.filter(kind=ReviewEvent.Kind.LEASE_EXPIRED).count() == 1
    assert not case.events.filter(kind=ReviewEvent.Kind.RELEASED).exists()


def test_next_case_button_opens_the_claimed_case(
    client: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    client.force_login(moderator)
    response = client.post(reverse("moderation:next-case"))
    assert response.status_code == 302
    assert response["Location"] == reverse("moderation:case-detail", kwargs={"case_id": case.pk})
    assert ReviewCase.objects.get(pk=case.pk).claimed_by == moderator


def test_next_case_on_an_empty_queue_says_so(client: Client, moderator: User) -> None:
    client.force_login(moderator)
    response = client.post(reverse("moderation:next-case"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("moderation:queue")
    assert "queue is empty" in response.content.decode()


def _claim_concurrently(moderators: list[User]) -> list[ReviewCase | None]:
    barrier = threading.Barrier(len(moderators))
    results: list[ReviewCase | None] = [None] * len(moderators)
    errors: list[BaseException] = []

    def work(position: int, user: User) -> None:
        try:
            barrier.wait(timeout=10)
            results[position] = services.review_case_claim_next(user=user)
        except BaseException as error:  # reported in the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(position, user))
        for position, user in enumerate(moderators)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("skip_locked", [True, False], ids=["skip-locked", "conditional-update"])
def test_simultaneous_next_case_requests_get_different_cases(
    make_case: Callable[..., ReviewCase], skip_locked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_service(
        connection.vendor == "postgresql",
        "PostgreSQL (threads need row locks; run with DATABASE_URL=postgres://...)",
    )
    # The conditional-UPDATE fallback (SQLite's path) must be exclusive on its own too.
    monkeypatch.setattr(
        connection.features.__class__, "has_select_for_update_skip_locked", skip_locked
    )
    cases = [make_case(fake_probability=0.9) for _ in range(6)]
    moderators = [ModeratorFactory.create() for _ in range(6)] + [StaffFactory.create()]
    for round_number in range(1, 4):  # a race that happens to pass once proves little
        results = _claim_concurrently(moderators)
        claimed = [case.pk for case in results if case is not None]
        assert len(claimed) == len(set(claimed)) == len(cases)
        assert results.count(None) == len(moderators) - len(cases)
        claims = ReviewEvent.objects.filter(kind=ReviewEvent.Kind.CLAIMED)
        assert claims.count() == round_number * len(cases)
        for case, user in zip(results, moderators, strict=True):
            if case is not None:
                services.review_case_release(case=case, user=user)
