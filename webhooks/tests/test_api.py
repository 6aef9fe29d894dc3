"""The webhooks API: register (secret shown once), list, change, delete, deliveries, re-send."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from deepfake_site.services import api_token_rotate
from moderation.tests.factories import SubmissionFactory, UserFactory
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_addresses_allowed")]

HOOK = "http://127.0.0.1:9/hooks"
EVENTS = ["submission.analysed", "submission.decided"]


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def platform() -> User:
    return UserFactory.create(username="platform")


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


@pytest.fixture
def api(platform: User) -> Client:
    return api_client(platform)


def register(api: Client, **body: Any) -> Any:
    payload = {"url": HOOK, "events": EVENTS, **body}
    return api.post(reverse("api:webhook-list"), payload, content_type="application/json")


def test_registering_answers_201_with_the_id_and_the_secret_once(api: Client) -> None:
    response = register(api)
    assert response.status_code == 201, response.content
    body = response.json()
    endpoint = WebhookEndpoint.objects.get()
    assert body["id"] == str(endpoint.id)
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    assert (body["url"], body["events"], body["is_active"]) == (HOOK, EVENTS, True)
    assert response["Location"] == reverse("api:webhook-detail", args=[endpoint.id])

    listed = api.get(reverse("api:webhook-list")).json()
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]
    assert "secret" not in api.get(reverse("api:webhook-detail", args=[endpoint.id])).json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"events": ["submission.exploded"]}, "events"),
        ({"events": []}, "events"),
    ],
)
def test_bad_registrations_answer_400_by_field(
    api: Client, body: dict[str, Any], field: str
) -> None:
    response = register(api, **body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_are_refused_with_the_reason(api: Client, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = register(api, url="http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 400
    assert "public addresses only" in response.json()["fields"]["url"][0]


def test_change_turn_off_and_on_and_delete(api: Client, platform: User) -> None:
    endpoint_id = register(api).json()["id"]
    url = reverse("api:webhook-detail", args=[endpoint_id])
    WebhookEndpoint.objects.filter(id=endpoint_id).update(
        is_active=False, consecutive_failures=5, disabled_reason="Turned off: failures."
    )

    changed = api.patch(
        url, {"events": ["submission.decided"], "is_active": True}, content_type="application/json"
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["events"], body["is_active"], body["consecutive_failures"]) == (
        ["submission.decided"],
        True,
        0,
    )
    assert body["disabled_reason"] == ""
    assert api.put(url, {}, content_type="application/json").status_code == 405
    assert api.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert api.get(url).json()["code"] == "not_found"


def test_another_accounts_endpoint_is_404_everywhere(api: Client) -> None:
    theirs = services.webhook_endpoint_create(
        owner=UserFactory.create(username="other"), url=HOOK, events=EVENTS
    )
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=theirs.owner)
    )
    urls = [
        reverse("api:webhook-detail", args=[theirs.id]),
        reverse("api:webhook-deliveries", args=[theirs.id]),
    ]
    for url in urls:
        assert api.get(url).status_code == 404
    assert api.delete(urls[0]).status_code == 404
    resend = reverse("api:webhook-delivery-resend", args=[theirs.id, delivery.id])
    assert api.post(resend).status_code == 404
    assert WebhookEndpoint.objects.filter(id=theirs.id).exists()


def test_deliveries_are_listed_with_their_attempts_and_can_be_resent(
    api: Client, platform: User
) -> None:
    endpoint = WebhookEndpoint.objects.get(id=register(api).json()["id"])
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_delivery_attempt(delivery_id=delivery.id)  # port 9: refused

    listed = api.get(reverse("api:webhook-deliveries", args=[endpoint.id])).json()
    [row] = listed["results"]
    assert (row["id"], row["event"], row["status"], row["attempts"]) == (
        str(delivery.id),
        "submission.analysed",
        "pending",
        1,
    )
    assert row["next_attempt_at"] is not None
    assert row["attempt_log"][0]["number"] == 1
    assert "Connection" in row["attempt_log"][0]["error"]

    resent = api.post(reverse("api:webhook-delivery-resend", args=[endpoint.id, delivery.id]))
    assert resent.status_code == 202
    assert resent.json()["resent_from"] == str(delivery.id)
    assert resent.json()["event_id"] == str(delivery.event_id)
    assert WebhookDelivery.objects.count() == 2


def test_resending_to_an_endpoint_that_is_off_is_a_409(api: Client, platform: User) -> None:
    endpoint = WebhookEndpoint.objects.get(id=register(api).json()["id"])
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_endpoint_update(endpoint=endpoint, is_active=False)
    response = api.post(reverse("api:webhook-delivery-resend", args=[endpoint.id, delivery.id]))
    assert response.status_code == 409
    assert response.json() == {
        "code": "endpoint_inactive",
        "detail": "This endpoint is off: turn it on before sending to it again.",
    }


def test_without_a_token_every_webhook_operation_is_401() -> None:
    anonymous = Client()
    assert anonymous.get(reverse("api:webhook-list")).status_code == 401
    response = anonymous.post(
        reverse("api:webhook-list"),
        {"url": HOOK, "events": EVENTS},
        content_type="application/json",
    )
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
