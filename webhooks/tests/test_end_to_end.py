"""A platform's whole integration, with a real Celery worker and real HTTP receivers: register
webhooks through the API, upload, get `submission.analysed` signed within a minute, let a
moderator decide through the moderation API, get `submission.decided`; a receiver that
answers 500 gets the same event again and again, each time after a longer wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from conftest import TEST_FRAMES, WorkerProcess
from deepfake_site.services import api_token_rotate
from moderation.tests.factories import ModeratorFactory, UserFactory
from webhooks import signing
from webhooks.models import WebhookDelivery
from webhooks.tests.conftest import Received, Receiver

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("private_addresses_allowed"),
]

MAX_ATTEMPTS = 4
RETRY_BASE_SECONDS = 1


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def assert_signed(request: Received, secret: str) -> None:
    timestamp = request.headers["X-Faceproof-Timestamp"]
    assert abs(time.time() - int(timestamp)) < 120
    assert request.headers["X-Faceproof-Signature"] == signing.signature(
        secret=secret, timestamp=timestamp, body=request.body
    )


def test_a_platform_gets_signed_events_and_a_failing_receiver_gets_growing_waits(
    start_worker: Callable[..., WorkerProcess],
    start_receiver: Callable[..., Receiver],
    demo_checkpoint: Path,
) -> None:
    receiver, failing = start_receiver(), start_receiver(status=500)
    platform = api_client(UserFactory.create(username="platform"))
    secrets = {}
    for target in (receiver, failing):
        registered = platform.post(
            reverse("api:webhook-list"),
            {"url": target.url, "events": ["submission.analysed", "submission.decided"]},
            content_type="application/json",
        )
        assert registered.status_code == 201, registered.content
        secrets[target.url] = registered.json()["secret"]
    start_worker(
        queues="inference,celery",
        concurrency=2,
        env={
            "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
            # Zero thresholds flag every face, so the untrained demo model opens a case.
            "FLAG_THRESHOLD": "0",
            "UNCERTAIN_THRESHOLD": "0",
            "TORCH_NUM_THREADS": "1",
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "WEBHOOK_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
        },
    )

    uploaded_at = time.monotonic()
    with (TEST_FRAMES / "fake_frame_0.jpg").open("rb") as image:
        upload = platform.post(reverse("api:submission-list"), {"image": image})
    assert upload.status_code == 202
    submission_id = upload.json()["id"]

    [analysed] = receiver.wait_for("submission.analysed", timeout=60)
    assert analysed.at - uploaded_at < 60
    assert_signed(analysed, secrets[receiver.url])
    event = analysed.json()
    assert event["event"] == "submission.analysed"
    submission = event["data"]["submission"]
    assert (submission["id"], submission["status"], submission["verdict"]) == (
        submission_id,
        "done",
        "fake",
    )
    assert len(submission["faces"]) == 2
    assert all(0 <= face["fake_probability"] <= 1 for face in submission["faces"])

    moderator = api_client(ModeratorFactory.create(username="moderator"))
    [case] = moderator.get(reverse("api:case-list")).json()["results"]
    assert case["submission"]["id"] == submission_id
    assert moderator.post(reverse("api:case-claim", args=[case["id"]])).status_code == 200
    decided = moderator.post(
        reverse("api:case-decision", args=[case["id"]]),
        {"decision": "confirm", "note": "Blending seams along both jawlines."},
        content_type="application/json",
    )
    assert decided.status_code == 200, decided.content

    [decision] = receiver.wait_for("submission.decided", timeout=60)
    assert_signed(decision, secrets[receiver.url])
    outcome = decision.json()["data"]
    assert outcome["submission"]["id"] == submission_id
    assert outcome["outcome"]["state"] == "confirmed_manipulated"
    assert outcome["inherited"] is False
    assert "jawlines" not in decision.body.decode()  # notes stay internal

    attempts = failing.wait_for("submission.analysed", count=MAX_ATTEMPTS, timeout=60)
    assert len({request.headers["X-Faceproof-Delivery"] for request in attempts}) == 1
    for request in attempts:
        assert_signed(request, secrets[failing.url])
    waits = [later.at - earlier.at for earlier, later in pairwise(attempts)]
    expected = [RETRY_BASE_SECONDS * 3**n for n in range(MAX_ATTEMPTS - 1)]  # 1, 3, 9 s
    for wait, planned in zip(waits, expected, strict=True):
        assert planned * 0.9 <= wait < planned + 5, (waits, expected)
    assert waits == sorted(waits)

    delivery = wait_for_delivery(failing.url, lambda d: d.status == "failed")
    assert delivery.attempts == MAX_ATTEMPTS
    assert [attempt.response_status for attempt in delivery.attempt_log.all()] == [500] * 4
    assert delivery.error == "Answered 500."


def wait_for_delivery(
    url: str, condition: Callable[[WebhookDelivery], bool], timeout: float = 30
) -> WebhookDelivery:
    deadline = time.monotonic() + timeout
    delivery = None
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.filter(
            endpoint__url=url, event="submission.analysed"
        ).first()
        if delivery is not None and condition(delivery):
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"the delivery to {url} did not get there: {delivery}")
