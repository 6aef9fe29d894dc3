"""Reads for webhooks: an account sees only its own endpoints and their deliveries."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet

from webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoints_for_user(*, user: User) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=user).order_by("created_at", "id")


def webhook_endpoint_get_for_user(*, endpoint_id: uuid.UUID, user: User) -> WebhookEndpoint | None:
    """None for another account's endpoint as for a missing one (callers answer 404)."""
    return webhook_endpoints_for_user(user=user).filter(id=endpoint_id).first()


def webhook_deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Newest first, each with its attempts, in a fixed number of queries."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("endpoint")
        .prefetch_related("attempt_log")
        .order_by("-created_at", "-id")
    )


def webhook_delivery_get(
    *, endpoint: WebhookEndpoint, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    return webhook_deliveries_for_endpoint(endpoint=endpoint).filter(id=delivery_id).first()
