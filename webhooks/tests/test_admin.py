"""The admin shows endpoints and deliveries to staff, never an endpoint's secret."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from moderation.tests.factories import StaffFactory, UserFactory
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_staff_see_an_endpoint_but_not_its_secret_and_can_turn_it_off(client: Client) -> None:
    endpoint = WebhookEndpoint.objects.create(
        owner=UserFactory.create(username="platform"),
        url="https://hooks.example/faceproof",
        events=["submission.analysed"],
        secret="whsec_never-shown-in-the-admin",
    )
    client.force_login(StaffFactory.create(is_superuser=True))
    for url in (
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.id]),
    ):
        page = client.get(url).content.decode()
        assert "hooks.example/faceproof" in page
        assert "never-shown-in-the-admin" not in page

    client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "turn_off", "_selected_action": [str(endpoint.id)]},
    )
    endpoint.refresh_from_db()
    assert not endpoint.is_active
