"""Webhook endpoints and deliveries through the services: events become signed, recorded
deliveries sent after commit, retried with growing waits, and endpoints that keep failing
are turned off with a notice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from detection import services as detection_services
from moderation import services as moderation_services
from moderation.models import Decision
from moderation.tests.factories import ModeratorFactory, SubmissionFactory, UserFactory
from webhooks import services, signing
from webhooks.models import Event, WebhookDelivery, WebhookEndpoint
from webhooks.tests.conftest import Receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_addresses_allowed")]

BOTH: list[str] = [Event.SUBMISSION_ANALYSED, Event.SUBMISSION_DECIDED]


@pytest.fixture
def broker() -> Iterator[mock.MagicMock]:
    """The delivery task's messages, caught instead of sent."""
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def platform() -> User:
    return UserFactory.create(username="platform")


@pytest.fixture
def receiver(start_receiver: Callable[..., Receiver]) -> Receiver:
    return start_receiver()


def endpoint_for(user: User, url: str, events: list[str] = BOTH) -> WebhookEndpoint:
    return services.webhook_endpoint_create(owner=user, url=url, events=events)


def sent_ids(broker: mock.MagicMock) -> list[str]:
    return [call.args[0][0] for call in broker.call_args_list]


def due_now(delivery: WebhookDelivery) -> None:
    """Move a scheduled attempt to now, as time passing would."""
    WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())


def test_an_event_reaches_each_subscribed_active_endpoint_of_the_uploader_after_commit(
    platform: User,
    broker: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    everything = endpoint_for(platform, "http://127.0.0.1:9/all")
    decided_only = endpoint_for(platform, "http://127.0.0.1:9/decided", [Event.SUBMISSION_DECIDED])
    switched_off = endpoint_for(platform, "http://127.0.0.1:9/off")
    services.webhook_endpoint_update(endpoint=switched_off, is_active=False)
    endpoint_for(UserFactory.create(username="someone-else"), "http://127.0.0.1:9/theirs")
    submission = SubmissionFactory.create(uploader=platform, status="processing")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        detection_services.analysis_fail(submission_id=submission.id, reason="It broke.")
        assert broker.call_count == 0  # nothing leaves before the commit
    assert len(callbacks) == 1

    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == everything
    assert (delivery.event, delivery.status) == (Event.SUBMISSION_ANALYSED, "pending")
    assert sent_ids(broker) == [str(delivery.id)]
    body = json.loads(delivery.body)
    assert body["event"] == "submission.analysed"
    assert body["id"] == str(delivery.event_id)
    assert body["data"]["submission"]["id"] == str(submission.id)
    assert body["data"]["submission"]["status"] == "failed"
    assert body["data"]["submission"]["failure_reason"] == "It broke."
    assert body["data"]["submission"]["url"].endswith(f"/api/v1/submissions/{submission.id}/")
    assert not WebhookDelivery.objects.filter(endpoint=decided_only).exists()


def test_a_decision_sends_the_outcome_without_notes_or_moderator_names(
    platform: User, broker: mock.MagicMock, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    case = moderation_services.review_case_open(
        submission=SubmissionFactory.create(uploader=platform)
    )
    assert case is not None
    moderator = ModeratorFactory.create(username="secret-moderator")
    with django_capture_on_commit_callbacks(execute=True):
        moderation_services.review_case_decide(
            case=case, user=moderator, decision=Decision.CONFIRM, note="internal reasoning"
        )
    delivery = WebhookDelivery.objects.get(event=Event.SUBMISSION_DECIDED)
    data = json.loads(delivery.body)["data"]
    assert data["outcome"]["state"] == "confirmed_manipulated"
    assert data["outcome"]["decided_at"] is not None
    assert data["inherited"] is False
    assert "internal reasoning" not in delivery.body
    assert "secret-moderator" not in delivery.body
    assert sent_ids(broker) == [str(delivery.id)]


def test_an_escalation_is_not_a_decision(
    platform: User, broker: mock.MagicMock, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    case = moderation_services.review_case_open(
        submission=SubmissionFactory.create(uploader=platform)
    )
    assert case is not None
    with django_capture_on_commit_callbacks(execute=True):
        moderation_services.review_case_decide(
            case=case, user=ModeratorFactory.create(), decision=Decision.ESCALATE, note="staff?"
        )
    assert not WebhookDelivery.objects.exists()


def test_a_near_copy_inheriting_a_decision_is_told_it_was_inherited(
    platform: User, broker: mock.MagicMock, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    pdq = "0f" * 32
    case = moderation_services.review_case_open(
        submission=SubmissionFactory.create(pdq=pdq, pdq_quality=100)
    )
    assert case is not None
    moderation_services.review_case_decide(
        case=case, user=ModeratorFactory.create(), decision=Decision.CONFIRM
    )
    copy = SubmissionFactory.create(uploader=platform, pdq=pdq, pdq_quality=100)
    with django_capture_on_commit_callbacks(execute=True):
        assert moderation_services.review_case_open(submission=copy) is None
    data = json.loads(WebhookDelivery.objects.get(event=Event.SUBMISSION_DECIDED).body)["data"]
    assert data["submission"]["id"] == str(copy.id)
    assert data["outcome"]["state"] == "confirmed_manipulated"
    assert data["inherited"] is True


def test_the_first_of_two_reviews_is_not_a_decision_the_second_is(
    platform: User, broker: mock.MagicMock, settings: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    settings.DOUBLE_REVIEW_RATE = 1
    case = moderation_services.review_case_open(
        submission=SubmissionFactory.create(uploader=platform)
    )
    assert case is not None
    first, second = ModeratorFactory.create(), ModeratorFactory.create()
    moderation_services.review_case_decide(case=case, user=first, decision=Decision.CONFIRM)
    assert not WebhookDelivery.objects.exists()
    moderation_services.review_case_decide(case=case, user=second, decision=Decision.CONFIRM)
    assert WebhookDelivery.objects.get().event == Event.SUBMISSION_DECIDED


def test_an_attempt_posts_the_stored_body_signed_and_records_the_answer(
    platform: User, receiver: Receiver, broker: mock.MagicMock
) -> None:
    endpoint = endpoint_for(platform, receiver.url)
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )

    services.webhook_delivery_attempt(delivery_id=delivery.id)

    [request] = receiver.requests
    assert request.body == delivery.body.encode()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Faceproof-Event"] == "submission.analysed"
    assert request.headers["X-Faceproof-Delivery"] == str(delivery.id)
    timestamp = request.headers["X-Faceproof-Timestamp"]
    assert abs(int(timestamp) - timezone.now().timestamp()) < 60
    assert request.headers["X-Faceproof-Signature"] == signing.signature(
        secret=endpoint.secret, timestamp=timestamp, body=request.body
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.latency_ms is not None and delivery.next_attempt_at is None
    [attempt] = delivery.attempt_log.all()
    assert (attempt.number, attempt.response_status, attempt.error) == (1, 200, "")


def test_failed_attempts_wait_three_times_longer_each_time_then_give_up(
    platform: User,
    start_receiver: Callable[..., Receiver],
    broker: mock.MagicMock,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    failing = start_receiver(status=500)
    endpoint = endpoint_for(platform, failing.url)
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    waits = []
    for _ in range(3):
        started = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            services.webhook_delivery_attempt(delivery_id=delivery.id)
        delivery.refresh_from_db()
        if delivery.next_attempt_at is not None:
            waits.append((delivery.next_attempt_at - started).total_seconds())
            due_now(delivery)

    assert len(failing.requests) == 3
    assert [round(wait) for wait in waits] == [10, 30]
    # Each retry went to the broker as a message due when the wait is over.
    assert [call.kwargs["countdown"] for call in broker.call_args_list] == [10, 30]
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 500)
    assert delivery.error == "Answered 500."
    assert [a.response_status for a in delivery.attempt_log.all()] == [500, 500, 500]
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1 and endpoint.is_active


def test_retries_too_far_ahead_for_a_message_are_left_to_the_sweep(
    platform: User,
    start_receiver: Callable[..., Receiver],
    broker: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    failing = start_receiver(status=503)
    endpoint_for(platform, failing.url)
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    for _ in range(4):  # waits of 60, 180, 540 and then 1620 s
        with django_capture_on_commit_callbacks(execute=True):
            services.webhook_delivery_attempt(delivery_id=delivery.id)
        delivery.refresh_from_db()
        assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
        last_wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
        due_now(delivery)
    assert [call.kwargs["countdown"] for call in broker.call_args_list] == [60, 180, 540]
    assert (delivery.status, round(last_wait)) == ("pending", 1620)


def test_a_message_for_an_attempt_not_due_or_already_made_sends_nothing(
    platform: User, receiver: Receiver, broker: mock.MagicMock
) -> None:
    endpoint_for(platform, receiver.url)
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_delivery_attempt(delivery_id=delivery.id)
    services.webhook_delivery_attempt(delivery_id=delivery.id)  # a duplicate message
    assert len(receiver.requests) == 1

    [later] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    WebhookDelivery.objects.filter(id=later.id).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    services.webhook_delivery_attempt(delivery_id=later.id)
    assert len(receiver.requests) == 1


def test_an_endpoint_that_keeps_failing_is_turned_off_with_a_notice(
    platform: User,
    start_receiver: Callable[..., Receiver],
    broker: mock.MagicMock,
    settings: Any,
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    failing = start_receiver(status=404)
    endpoint = endpoint_for(platform, failing.url)
    deliveries = [
        services.submission_analysed_notify(submission=SubmissionFactory.create(uploader=platform))[
            0
        ]
        for _ in range(3)
    ]
    for delivery in deliveries[:2]:
        services.webhook_delivery_attempt(delivery_id=delivery.id)

    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_at is not None
    assert "2 deliveries in a row failed" in endpoint.disabled_reason
    assert "Answered 404." in endpoint.disabled_reason
    # What was still waiting is not sent to an endpoint that is off.
    services.webhook_delivery_attempt(delivery_id=deliveries[2].id)
    deliveries[2].refresh_from_db()
    assert deliveries[2].status == "failed" and deliveries[2].attempts == 0
    assert "endpoint is off" in deliveries[2].error
    assert len(failing.requests) == 2
    # Nor does a new event create a delivery for it.
    assert (
        services.submission_analysed_notify(submission=SubmissionFactory.create(uploader=platform))
        == []
    )

    services.webhook_endpoint_update(endpoint=endpoint, is_active=True)
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.disabled_reason) == (0, "")


def test_a_delivered_attempt_resets_the_failure_count(
    platform: User, receiver: Receiver, broker: mock.MagicMock
) -> None:
    endpoint = endpoint_for(platform, receiver.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=3)
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_delivery_attempt(delivery_id=delivery.id)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_a_resend_is_a_new_delivery_of_the_same_event_and_body(
    platform: User, receiver: Receiver, broker: mock.MagicMock
) -> None:
    endpoint = endpoint_for(platform, receiver.url)
    [first] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_delivery_attempt(delivery_id=first.id)

    again = services.webhook_delivery_resend(delivery=first)
    services.webhook_delivery_attempt(delivery_id=again.id)

    assert again.id != first.id
    assert (again.event_id, again.body, again.resent_from_id) == (
        first.event_id,
        first.body,
        first.id,
    )
    assert [r.headers["X-Faceproof-Delivery"] for r in receiver.requests] == [
        str(first.id),
        str(again.id),
    ]
    assert receiver.requests[0].body == receiver.requests[1].body

    services.webhook_endpoint_update(endpoint=endpoint, is_active=False)
    with pytest.raises(ValidationError, match="turn it on"):
        services.webhook_delivery_resend(delivery=first)


def test_the_sweep_sends_lost_deliveries_frees_dead_claims_and_drops_old_records(
    platform: User, broker: mock.MagicMock, settings: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    now = timezone.now()
    make = lambda: services.submission_analysed_notify(  # noqa: E731
        submission=SubmissionFactory.create(uploader=platform)
    )[0]
    lost, dead_claim, fresh, old = make(), make(), make(), make()
    WebhookDelivery.objects.filter(id=lost.id).update(next_attempt_at=now - timedelta(minutes=2))
    WebhookDelivery.objects.filter(id=dead_claim.id).update(
        status="sending", claimed_at=now - timedelta(minutes=30), attempts=1
    )
    WebhookDelivery.objects.filter(id=old.id).update(
        status="delivered",
        created_at=now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS + 1),
    )
    broker.reset_mock()

    swept = services.webhook_deliveries_sweep(now=now)

    assert set(swept) == {lost.id, dead_claim.id}
    assert set(sent_ids(broker)) == {str(lost.id), str(dead_claim.id)}
    assert WebhookDelivery.objects.get(id=dead_claim.id).status == "pending"
    assert WebhookDelivery.objects.filter(id=fresh.id, status="pending").exists()
    assert not WebhookDelivery.objects.filter(id=old.id).exists()


def test_a_broker_outage_leaves_the_delivery_pending_for_the_sweep(
    platform: User, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(platform, "http://127.0.0.1:9/hook")
    with (
        mock.patch(
            "webhooks.tasks.deliver_webhook.apply_async", side_effect=OSError("broker down")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        [delivery] = services.submission_analysed_notify(
            submission=SubmissionFactory.create(uploader=platform)
        )
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None


@pytest.mark.parametrize(
    ("url", "events", "field", "says"),
    [
        ("http://127.0.0.1:9/hook", ["submission.nope"], "events", "Choose one or more"),
        ("http://127.0.0.1:9/hook", [], "events", "Choose one or more"),
        ("ftp://example.com/", BOTH, "url", "http:// or https://"),
    ],
)
def test_endpoints_with_bad_urls_or_events_are_refused_by_field(
    platform: User, url: str, events: list[str], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        services.webhook_endpoint_create(owner=platform, url=url, events=events)
    assert says in " ".join(refused.value.message_dict[field])
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_are_refused_unless_the_setting_allows_them(
    platform: User, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(ValidationError, match="public addresses only"):
        services.webhook_endpoint_create(
            owner=platform, url="http://169.254.169.254/latest", events=BOTH
        )


def test_an_account_has_at_most_ten_endpoints(platform: User) -> None:
    for number in range(services.MAX_ENDPOINTS_PER_ACCOUNT):
        endpoint_for(platform, f"http://127.0.0.1:9/{number}")
    with pytest.raises(ValidationError, match="at most 10"):
        endpoint_for(platform, "http://127.0.0.1:9/one-more")


def test_each_endpoint_gets_its_own_secret(platform: User) -> None:
    first = endpoint_for(platform, "http://127.0.0.1:9/a")
    second = endpoint_for(platform, "http://127.0.0.1:9/b")
    assert first.secret.startswith("whsec_") and len(first.secret) > 40
    assert first.secret != second.secret
