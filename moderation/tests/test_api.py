"""The moderation API: the same queue, claims, rules and audit trail as the moderator pages,
in JSON, for moderators and staff only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deepfake_site.services import api_token_rotate
from moderation import rules, services
from moderation.models import Decision, ReviewCase, ReviewEvent
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db

Case = Callable[..., ReviewCase]


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def decide(api: Client, case: ReviewCase, decision: str, note: str = "") -> Any:
    return api.post(
        reverse("api:case-decision", args=[case.pk]),
        {"decision": decision, "note": note},
        content_type="application/json",
    )


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as apply_async:
        yield apply_async


def test_the_queue_lists_cases_by_priority_with_the_pages_filters(
    moderator: User, make_case: Case
) -> None:
    low = make_case(fake_probability=0.35, verdict="uncertain")
    high = make_case(fake_probability=0.95)
    api = api_client(moderator)

    body = api.get(reverse("api:case-list")).json()
    assert [row["id"] for row in body["results"]] == [str(high.pk), str(low.pk)]
    row = body["results"][0]
    assert (row["state"], row["verdict"], row["claimed_by"], row["lease_expires_at"]) == (
        "pending",
        "fake",
        None,
        None,
    )
    assert row["submission"]["uploader"] == "uploader"
    assert row["url"].endswith(reverse("api:case-detail", args=[high.pk]))

    filtered = api.get(reverse("api:case-list"), {"verdict": "uncertain", "max_probability": "50"})
    assert [row["id"] for row in filtered.json()["results"]] == [str(low.pk)]
    invalid = api.get(reverse("api:case-list"), {"min_probability": 80, "max_probability": 20})
    assert invalid.status_code == 400 and invalid.json()["code"] == "invalid"
    assert api.get(reverse("api:case-list"), {"state": "bogus"}).status_code == 400


@pytest.mark.parametrize(
    ("method", "url_name"),
    [
        ("get", "case-list"),
        ("post", "case-next"),
        ("get", "case-detail"),
        ("post", "case-claim"),
        ("post", "case-decision"),
        ("post", "case-release"),
        ("get", "submission-evidence"),
    ],
)
def test_uploaders_get_403_and_anonymous_callers_401(
    uploader: User, make_case: Case, method: str, url_name: str
) -> None:
    case = make_case()
    args = (
        []
        if url_name in ("case-list", "case-next")
        else [case.submission_id if url_name == "submission-evidence" else case.pk]
    )
    url = reverse(f"api:{url_name}", args=args)
    forbidden = getattr(api_client(uploader), method)(url)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "permission_denied"
    assert getattr(Client(), method)(url).status_code == 401
    assert case.events.count() == 1  # nothing but its opening


def test_next_claims_the_most_urgent_case_then_says_204_when_none_waits(
    moderator: User, other_moderator: User, make_case: Case
) -> None:
    case = make_case()
    api = api_client(moderator)
    response = api.post(reverse("api:case-next"))
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["claimed_by"]) == (str(case.pk), "moderator")
    assert body["lease_expires_at"] is not None
    assert [event["kind"] for event in body["history"]] == ["opened", "claimed"]
    # The same moderator gets the case they hold back; nobody else gets it.
    assert api.post(reverse("api:case-next")).json()["id"] == str(case.pk)
    assert api_client(other_moderator).post(reverse("api:case-next")).status_code == 204


def test_a_case_shows_the_submission_faces_history_and_the_decisions_you_may_take(
    moderator: User, make_case: Case
) -> None:
    case = make_case(faces=2, verdict="fake")
    body = api_client(moderator).get(reverse("api:case-detail", args=[case.pk])).json()
    assert body["analysis"]["id"] == str(case.submission_id)
    assert len(body["analysis"]["faces"]) == 2
    assert body["analysis"]["faces"][0]["heatmap_url"].startswith("http://testserver/")
    assert body["history"] == [
        {
            "kind": "opened",
            "description": "Opened",
            "actor": None,
            "note": "",
            "created_at": body["history"][0]["created_at"],
        }
    ]
    actions = {action["decision"]: action for action in body["actions"]}
    assert actions["confirm"] == {
        "decision": "confirm",
        "allowed": True,
        "refusal": None,
        "note_required": False,
    }
    assert actions["clear"]["note_required"] is True  # against the model's `fake`
    assert body["evidence_url"].endswith(
        reverse("api:submission-evidence", args=[case.submission_id])
    )


def test_deciding_follows_the_same_rules_as_the_case_page(
    moderator: User, other_moderator: User, uploader: User, make_case: Case
) -> None:
    case = make_case(verdict="fake")
    api = api_client(moderator)

    missing_note = decide(api, case, "clear")
    assert missing_note.status_code == 400
    assert missing_note.json()["fields"] == {"note": [rules.NOTE_REQUIRED]}

    api_client(other_moderator).post(reverse("api:case-claim", args=[case.pk]))
    held = decide(api, case, "confirm")
    assert held.status_code == 409
    assert held.json()["code"] == "refused"
    assert "other-moderator is reviewing this case" in held.json()["detail"]

    ReviewCase.objects.filter(pk=case.pk).update(lease_expires_at=timezone.now())
    done = decide(api, case, "confirm", "Seams along the jaw.")
    assert done.status_code == 200, done.content
    body = done.json()
    assert (body["state"], body["decided_by"]) == ("confirmed", "moderator")
    assert [event["kind"] for event in body["history"]][-1] == "confirmed"
    assert body["history"][-1]["note"] == "Seams along the jaw."
    assert body["analysis"]["moderation"]["state"] == "confirmed_manipulated"

    again = decide(api, case, "clear", "Changed my mind.")
    assert again.status_code == 409
    assert "already decided" in again.json()["detail"]
    assert ReviewEvent.objects.filter(case=case, kind="cleared").count() == 0


def test_nobody_decides_their_own_upload_through_the_api_either(
    moderator: User, make_case: Case
) -> None:
    case = make_case(uploader=moderator)
    response = decide(api_client(moderator), case, "confirm")
    assert response.status_code == 409
    assert response.json()["detail"] == rules.OWN_UPLOAD
    assert api_client(moderator).post(reverse("api:case-claim", args=[case.pk])).status_code == 409


def test_escalated_cases_are_decided_by_staff_only(
    moderator: User, staff: User, make_case: Case
) -> None:
    case = make_case()
    assert decide(api_client(moderator), case, "escalate").status_code == 400  # owes a note
    assert decide(api_client(moderator), case, "escalate", "Looks staged.").status_code == 200
    refused = decide(api_client(moderator), case, "confirm")
    assert refused.status_code == 409
    assert "only staff decide it" in refused.json()["detail"]
    assert decide(api_client(staff), case, "confirm").json()["state"] == "confirmed"


def test_release_gives_a_held_case_back_with_its_note(moderator: User, make_case: Case) -> None:
    case = make_case()
    api = api_client(moderator)
    release = reverse("api:case-release", args=[case.pk])
    not_held = api.post(release, {}, content_type="application/json")
    assert not_held.status_code == 409 and not_held.json()["code"] == "not_claimed"

    api.post(reverse("api:case-claim", args=[case.pk]))
    released = api.post(release, {"note": "Need a second look."}, content_type="application/json")
    assert released.status_code == 200
    assert released.json()["claimed_by"] is None
    assert released.json()["history"][-1]["kind"] == "released"
    assert released.json()["history"][-1]["note"] == "Need a second look."


def test_a_lapsed_lease_is_released_before_the_case_is_shown(
    moderator: User, other_moderator: User, make_case: Case
) -> None:
    case = make_case()
    services.review_case_claim(case=case, user=other_moderator)
    ReviewCase.objects.filter(pk=case.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    body = api_client(moderator).get(reverse("api:case-detail", args=[case.pk])).json()
    assert body["claimed_by"] is None
    assert body["history"][-1]["kind"] == "lease_expired"


def test_an_unknown_case_is_404_in_the_api_format(moderator: User) -> None:
    response = api_client(moderator).get(
        reverse("api:case-detail", args=["00000000-0000-0000-0000-000000000000"])
    )
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_a_decision_through_the_api_tells_the_uploaders_webhooks(
    moderator: User, make_case: Case, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    case = make_case()
    webhook_endpoint_create(
        owner=case.submission.uploader,
        url="http://127.0.0.1:9/hook",
        events=["submission.decided"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert decide(api_client(moderator), case, Decision.CONFIRM).status_code == 200
    assert WebhookDelivery.objects.get().event == "submission.decided"
