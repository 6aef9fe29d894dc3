"""The audit trail is append-only: no ORM path and no admin page changes or removes an event."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse

from moderation import services
from moderation.models import Decision, ReviewCase, ReviewEvent, ReviewEventIsAppendOnly
from moderation.rules import REVIEW_CASES

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(make_case: Callable[..., ReviewCase], moderator: User) -> ReviewEvent:
    case = make_case()
    services.review_case_decide(
        case=case, user=moderator, decision=Decision.CONFIRM, note="original note"
    )
    return case.events.get(kind=ReviewEvent.Kind.CONFIRMED)


def _unchanged(event: ReviewEvent) -> bool:
    stored = ReviewEvent.objects.filter(pk=event.pk).values("kind", "note", "actor").get()
    return stored == {"kind": "confirmed", "note": "original note", "actor": event.actor_id}


def test_saving_a_changed_event_is_refused(event: ReviewEvent) -> None:
    event.note = "rewritten history"
    with pytest.raises(ReviewEventIsAppendOnly):
        event.save()
    with pytest.raises(ReviewEventIsAppendOnly):
        event.save(update_fields=["note"])
    assert _unchanged(event)


def test_inserting_over_an_existing_event_is_refused(event: ReviewEvent) -> None:
    forged = ReviewEvent(pk=event.pk, case_id=event.case_id, kind="cleared", note="forged")
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    assert _unchanged(event)


def test_deleting_an_event_is_refused(event: ReviewEvent) -> None:
    with pytest.raises(ReviewEventIsAppendOnly):
        event.delete()
    assert _unchanged(event)


def test_queryset_update_and_delete_are_refused(event: ReviewEvent) -> None:
    with pytest.raises(ReviewEventIsAppendOnly):
        ReviewEvent.objects.filter(pk=event.pk).update(note="rewritten")
    with pytest.raises(ReviewEventIsAppendOnly):
        ReviewEvent.objects.all().delete()
    with pytest.raises(ReviewEventIsAppendOnly):
        event.case.events.update(note="rewritten")
    with pytest.raises(ReviewEventIsAppendOnly):
        ReviewEvent._base_manager.filter(pk=event.pk).update(note="rewritten")
    # bulk_update runs inside a transaction of its own; the savepoint keeps the test's usable.
    with pytest.raises(ReviewEventIsAppendOnly), transaction.atomic():
        ReviewEvent.objects.bulk_update([event], ["note"])
    assert _unchanged(event)


def test_deleting_the_case_submission_or_moderator_cannot_take_events_along(
    event: ReviewEvent, moderator: User
) -> None:
    with pytest.raises(ProtectedError):
        event.case.delete()
    with pytest.raises(ProtectedError):
        event.case.submission.delete()
    with pytest.raises(ProtectedError):
        moderator.delete()
    assert _unchanged(event)


def test_events_have_only_a_view_permission_and_moderators_hold_it() -> None:
    codenames = set(
        Permission.objects.filter(content_type__model="reviewevent").values_list(
            "codename", flat=True
        )
    )
    assert codenames == {"view_reviewevent"}
    group = Group.objects.get(name="moderators")
    held = set(group.permissions.values_list("codename", flat=True))
    assert {"review_cases", "view_reviewcase", "view_reviewevent"} <= held
    assert Permission.objects.filter(codename=REVIEW_CASES.split(".")[1]).count() == 1


@pytest.fixture
def admin_client_for(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_event_change_page_in_the_admin_is_read_only(
    admin_client_for: Client, event: ReviewEvent
) -> None:
    url = reverse("admin:moderation_reviewevent_change", args=[event.pk])
    page = admin_client_for.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "original note" in html
    assert 'name="_save"' not in html and 'name="note"' not in html
    response = admin_client_for.post(url, {"note": "rewritten", "kind": "cleared"})
    assert response.status_code == 403
    assert _unchanged(event)


def test_events_cannot_be_added_or_deleted_in_the_admin(
    admin_client_for: Client, event: ReviewEvent
) -> None:
    assert admin_client_for.get(reverse("admin:moderation_reviewevent_add")).status_code == 403
    delete_url = reverse("admin:moderation_reviewevent_delete", args=[event.pk])
    assert admin_client_for.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:moderation_reviewevent_changelist")
    response = admin_client_for.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert _unchanged(event)


def test_case_history_in_the_admin_is_read_only(
    admin_client_for: Client, event: ReviewEvent
) -> None:
    url = reverse("admin:moderation_reviewcase_change", args=[event.case_id])
    html = admin_client_for.get(url).content.decode()
    assert "original note" in html
    assert 'name="_save"' not in html and "events-0-note" not in html
    assert admin_client_for.post(url, {"state": "cleared"}).status_code == 403
    assert ReviewCase.objects.get(pk=event.case_id).state == ReviewCase.State.CONFIRMED
