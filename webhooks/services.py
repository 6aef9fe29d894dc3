"""Writes for webhooks: endpoints, events turned into deliveries, and sending them.

An event becomes one delivery row per subscribed endpoint, in the transaction that caused
it; the message that sends it goes to the broker only after that commits. Each attempt is a
conditional UPDATE that claims the row (so a duplicate message sends nothing), then one
signed POST, then the outcome: delivered, another attempt later (exponential backoff), or
failed for good. The database is the source of truth: a periodic sweep sends what is due
and was not sent (a broker outage, a retry too far away for a countdown message).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import KombuError

from detection.models import Submission
from moderation.selectors import SubmissionOutcome
from webhooks import payloads, signing, transport
from webhooks.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_ACCOUNT = 10
# Each attempt waits this many times longer than the one before.
BACKOFF_FACTOR = 3
# A retry nearer than this goes to the broker as a countdown message; a later one is left to
# the sweep, because a Redis broker hands a message held past its visibility timeout out again.
_COUNTDOWN_AT_MOST_SECONDS = 600
# A due delivery this late was never sent (broker down): the sweep sends it.
_UNSENT_GRACE_SECONDS = 30
# An attempt claimed this long ago died with its worker (the task's hard limit is far below).
_STALE_CLAIM_SECONDS = 300


# --- Endpoints ----------------------------------------------------------------------------------


def webhook_endpoint_create(*, owner: User, url: str, events: Iterable[str]) -> WebhookEndpoint:
    """A new active endpoint with a fresh secret (which the caller shows once).

    Raises ValidationError, by field, for a URL that cannot receive (see `transport`),
    unknown or no events, or an account that already has MAX_ENDPOINTS_PER_ACCOUNT.
    """
    events = _valid_events(events)
    _check_url(url)
    if WebhookEndpoint.objects.filter(owner=owner).count() >= MAX_ENDPOINTS_PER_ACCOUNT:
        raise ValidationError(
            f"An account may register at most {MAX_ENDPOINTS_PER_ACCOUNT} endpoints.",
            code="too_many_endpoints",
        )
    return WebhookEndpoint.objects.create(
        owner=owner, url=url, events=events, secret=signing.new_secret()
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given. Turning a disabled endpoint on again clears its failures."""
    if url is not None and url != endpoint.url:
        _check_url(url)
        endpoint.url = url
    if events is not None:
        endpoint.events = _valid_events(events)
    if is_active is not None and is_active != endpoint.is_active:
        endpoint.is_active = is_active
        if is_active:
            endpoint.consecutive_failures = 0
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its delivery records go; messages already queued find nothing."""
    endpoint.delete()


def _valid_events(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    unknown = [event for event in chosen if event not in Event.values]
    if unknown or not chosen:
        raise ValidationError(
            {"events": [f"Choose one or more of: {', '.join(Event.values)}."]}, code="invalid"
        )
    return chosen


def _check_url(url: str) -> None:
    problem = transport.url_problem(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES)
    if problem:
        raise ValidationError({"url": [problem]}, code="invalid")


# --- Events -------------------------------------------------------------------------------------


def submission_analysed_notify(*, submission: Submission) -> list[WebhookDelivery]:
    """`submission.analysed` to the uploader's endpoints: the analysis ended (any status)."""
    data = payloads.submission_analysed(submission=submission)
    return _emit(owner_id=submission.uploader_id, event=Event.SUBMISSION_ANALYSED, data=data)


def submission_decided_notify(
    *, submission: Submission, outcome: SubmissionOutcome, inherited: bool = False
) -> list[WebhookDelivery]:
    """`submission.decided` to the uploader's endpoints.

    `inherited`: the outcome came from an earlier decision on the same image rather than
    from a moderator deciding this submission (near-duplicate matching passes True).
    """
    data = payloads.submission_decided(submission=submission, outcome=outcome, inherited=inherited)
    return _emit(owner_id=submission.uploader_id, event=Event.SUBMISSION_DECIDED, data=data)


def _emit(*, owner_id: int, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    # Few endpoints per account (MAX_ENDPOINTS_PER_ACCOUNT): the event filter runs here
    # rather than as a JSON lookup, which SQLite cannot do.
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True)
        if event in endpoint.events
    ]
    if not endpoints:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "event": event, "created_at": now.isoformat(), "data": data},
        separators=(",", ":"),
    )
    deliveries = []
    with transaction.atomic():
        for endpoint in endpoints:
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint,
                event=event,
                event_id=event_id,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            _send_on_commit(delivery.id)
            deliveries.append(delivery)
    return deliveries


# --- Deliveries ---------------------------------------------------------------------------------


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same event and body again, as a new delivery (its own id and attempts)."""
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
    if not endpoint.is_active:
        raise ValidationError(
            "This endpoint is off: turn it on before sending to it again.",
            code="endpoint_inactive",
        )
    now = timezone.now()
    with transaction.atomic():
        resent = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=delivery.event,
            event_id=delivery.event_id,
            body=delivery.body,
            created_at=now,
            next_attempt_at=now,
            resent_from=delivery,
        )
        _send_on_commit(resent.id)
    return resent


def webhook_delivery_send(*, delivery_id: uuid.UUID, countdown: float = 0) -> bool:
    """Hand one attempt to the broker; False (logged) when it cannot be reached: the row
    stays pending and the sweep sends it later."""
    from webhooks.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async((str(delivery_id),), countdown=countdown)
    except (KombuError, OSError):
        logger.exception("cannot send webhook delivery %s to the broker", delivery_id)
        return False
    return True


def webhook_delivery_attempt(*, delivery_id: uuid.UUID) -> None:
    """Make the attempt that is due now, if it still is, and record what came of it."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        id=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    )
    # An endpoint turned off (by its owner or by failures) gets nothing more.
    due.filter(endpoint__is_active=False).update(
        status=WebhookDelivery.Status.FAILED,
        next_attempt_at=None,
        error="Not sent: the endpoint is off.",
    )
    claimed = due.filter(endpoint__is_active=True).update(
        status=WebhookDelivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return  # sent already, not yet due, or gone: a duplicate message does nothing
    delivery = WebhookDelivery.objects.select_related("endpoint").get(id=delivery_id)
    answer = _post(delivery)
    _record(delivery, answer, claimed_at=now)


def _post(delivery: WebhookDelivery) -> transport.Answer:
    endpoint = delivery.endpoint
    body = delivery.body.encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Faceproof-Webhooks/1",
        "X-Faceproof-Event": delivery.event,
        "X-Faceproof-Delivery": str(delivery.id),
        "X-Faceproof-Timestamp": timestamp,
        "X-Faceproof-Signature": signing.signature(
            secret=endpoint.secret, timestamp=timestamp, body=body
        ),
    }
    return transport.post(
        endpoint.url,
        body,
        headers,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
    )


def retry_delay(attempts_made: int) -> float:
    """Seconds between attempt n and attempt n+1: BASE, 3 x BASE, 9 x BASE, ..."""
    return float(settings.WEBHOOK_RETRY_BASE_SECONDS * BACKOFF_FACTOR ** (attempts_made - 1))


def _record(delivery: WebhookDelivery, answer: transport.Answer, *, claimed_at: datetime) -> None:
    fields: dict[str, Any] = {
        "claimed_at": None,
        "last_attempt_at": claimed_at,
        "response_status": answer.status,
        "latency_ms": answer.latency_ms,
        "error": answer.error,
        "next_attempt_at": None,
    }
    delay = None
    if answer.ok:
        fields["status"] = WebhookDelivery.Status.DELIVERED
    elif delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        delay = retry_delay(delivery.attempts)
        fields["status"] = WebhookDelivery.Status.PENDING
        # From the attempt's start: the countdown message, sent after the answer, is later.
        fields["next_attempt_at"] = claimed_at + timedelta(seconds=delay)
    else:
        fields["status"] = WebhookDelivery.Status.FAILED
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            sent_at=claimed_at,
            response_status=answer.status,
            latency_ms=answer.latency_ms,
            error=answer.error,
        )
        held = WebhookDelivery.objects.filter(
            id=delivery.id, status=WebhookDelivery.Status.SENDING, claimed_at=claimed_at
        ).update(**fields)
        if not held:
            return  # the sweep released this claim meanwhile; the next attempt is its own
        if answer.ok:
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(consecutive_failures=0)
        elif fields["status"] == WebhookDelivery.Status.FAILED:
            _count_failed_delivery(delivery.endpoint, last_error=answer.error)
        elif delay is not None and delay <= _COUNTDOWN_AT_MOST_SECONDS:
            _send_on_commit(delivery.id, countdown=delay)


def _count_failed_delivery(endpoint: WebhookEndpoint, *, last_error: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    endpoint.refresh_from_db(fields=["consecutive_failures", "is_active"])
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not endpoint.is_active or endpoint.consecutive_failures < limit:
        return
    now = timezone.now()
    reason = (
        f"Turned off on {now:%Y-%m-%d %H:%M} UTC: {endpoint.consecutive_failures} deliveries "
        f"in a row failed after {settings.WEBHOOK_MAX_ATTEMPTS} attempts each (the last: "
        f"{last_error}). Fix the receiver, turn the endpoint on, and re-send what it missed."
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=reason
    )
    logger.warning("webhook endpoint %s turned off: %s", endpoint.pk, reason)


def webhook_deliveries_sweep(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Send what is due and was never sent, free attempts whose worker died, and drop
    delivery records older than WEBHOOK_DELIVERY_RETENTION_DAYS. The sent ids come back."""
    now = now or timezone.now()
    dead_claims = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING,
        claimed_at__lt=now - timedelta(seconds=_STALE_CLAIM_SECONDS),
    )
    freed = list(dead_claims.values_list("id", flat=True))
    # The attempt that died counts; the next one is due at once.
    dead_claims.filter(id__in=freed).update(
        status=WebhookDelivery.Status.PENDING, claimed_at=None, next_attempt_at=now
    )
    unsent = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now - timedelta(seconds=_UNSENT_GRACE_SECONDS),
    ).values_list("id", flat=True)
    due = [*freed, *(delivery_id for delivery_id in unsent if delivery_id not in freed)]
    for delivery_id in due:
        webhook_delivery_send(delivery_id=delivery_id)
    WebhookDelivery.objects.filter(
        status__in=(WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED),
        created_at__lt=now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS),
    ).delete()
    return due


def _send_on_commit(delivery_id: uuid.UUID, countdown: float = 0) -> None:
    transaction.on_commit(
        functools.partial(webhook_delivery_send, delivery_id=delivery_id, countdown=countdown)
    )
