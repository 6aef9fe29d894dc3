"""The webhook settings pages: add (secret shown once), notices, deliveries, re-send, delete."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from moderation.tests.factories import SubmissionFactory, UserFactory
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_addresses_allowed")]

HOOK = "http://127.0.0.1:9/hooks"


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def owner() -> User:
    return UserFactory.create(username="owner")


@pytest.fixture
def owner_client(client: Client, owner: User) -> Client:
    client.force_login(owner)
    return client


def test_adding_an_endpoint_shows_its_secret_this_once(owner_client: Client) -> None:
    url = reverse("webhooks:endpoints")
    response = owner_client.post(url, {"url": HOOK, "events": ["submission.analysed"]})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["submission.analysed"]
    assert endpoint.secret in response.content.decode()

    again = owner_client.get(url).content.decode()
    assert HOOK in again and endpoint.secret not in again
    detail = owner_client.get(reverse("webhooks:endpoint-detail", args=[endpoint.id]))
    assert endpoint.secret not in detail.content.decode()


def test_an_unusable_url_is_refused_next_to_its_field(owner_client: Client, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = owner_client.post(
        reverse("webhooks:endpoints"), {"url": "http://10.0.0.5/", "events": ["submission.decided"]}
    )
    assert response.status_code == 400
    assert "public addresses only" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoint_turned_off_for_failures_shows_the_notice(
    owner_client: Client, owner: User
) -> None:
    endpoint = services.webhook_endpoint_create(
        owner=owner, url=HOOK, events=["submission.analysed"]
    )
    WebhookEndpoint.objects.filter(id=endpoint.id).update(
        is_active=False, disabled_reason="Turned off on 2026-01-01: 5 deliveries in a row failed."
    )
    for url in (
        reverse("webhooks:endpoints"),
        reverse("webhooks:endpoint-detail", args=[endpoint.id]),
    ):
        page = owner_client.get(url).content.decode()
        assert "5 deliveries in a row failed" in page

    response = owner_client.post(
        reverse("webhooks:endpoint-detail", args=[endpoint.id]),
        {"url": HOOK, "events": ["submission.analysed"], "is_active": "on"},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_reason == ""


def test_deliveries_are_listed_and_one_can_be_sent_again(owner_client: Client, owner: User) -> None:
    endpoint = services.webhook_endpoint_create(
        owner=owner, url=HOOK, events=["submission.analysed"]
    )
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=owner)
    )
    services.webhook_delivery_attempt(delivery_id=delivery.id)
    page = owner_client.get(reverse("webhooks:endpoint-detail", args=[endpoint.id]))
    html = page.content.decode()
    assert "submission.analysed" in html and "Waiting to be sent" in html
    assert "ConnectionRefusedError" in html

    response = owner_client.post(
        reverse("webhooks:delivery-resend", args=[endpoint.id, delivery.id]), follow=True
    )
    assert "being sent again" in response.content.decode()
    assert WebhookDelivery.objects.filter(resent_from=delivery).count() == 1


def test_deleting_an_endpoint(owner_client: Client, owner: User) -> None:
    endpoint = services.webhook_endpoint_create(
        owner=owner, url=HOOK, events=["submission.analysed"]
    )
    response = owner_client.post(reverse("webhooks:endpoint-delete", args=[endpoint.id]))
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_another_accounts_endpoint_is_404_on_every_page(owner_client: Client) -> None:
    other = UserFactory.create(username="other")
    theirs = services.webhook_endpoint_create(owner=other, url=HOOK, events=["submission.analysed"])
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=other)
    )
    assert (
        owner_client.get(reverse("webhooks:endpoint-detail", args=[theirs.id])).status_code == 404
    )
    for url in (
        reverse("webhooks:endpoint-detail", args=[theirs.id]),
        reverse("webhooks:endpoint-delete", args=[theirs.id]),
        reverse("webhooks:delivery-resend", args=[theirs.id, delivery.id]),
    ):
        assert owner_client.post(url, {"url": HOOK}).status_code == 404
    assert WebhookEndpoint.objects.filter(id=theirs.id, url=HOOK).exists()
    assert WebhookDelivery.objects.count() == 1
