"""Thin Celery tasks for webhooks: they take ids and call one service each."""

from __future__ import annotations

import uuid

from celery import shared_task

from webhooks import services


# Short limits: an attempt is one POST with a few-second timeout per socket operation.
@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id: str) -> None:
    services.webhook_delivery_attempt(delivery_id=uuid.UUID(delivery_id))


@shared_task
def sweep_webhook_deliveries() -> int:
    return len(services.webhook_deliveries_sweep())
