"""Every list page and endpoint costs a fixed number of queries, however many rows it shows.

Each check loads the page with a few rows, then with many more: the query count must not
grow (no query per row), and must stay under a small bound.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deepfake_site.services import api_token_rotate
from detection.models import Submission, Track
from moderation import services
from moderation.models import Decision, ReviewCase
from moderation.tests.factories import (
    FaceFactory,
    ModeratorFactory,
    StaffFactory,
    SubmissionFactory,
    UserFactory,
)
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

MAX_QUERIES = 15


def queries_to_load(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        assert response.status_code == 200, response
        if response.streaming:
            b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return len(captured)


def assert_fixed_query_count(
    client: Client, url: str, add_rows: Callable[[int], None], *, bound: int = MAX_QUERIES
) -> None:
    add_rows(2)
    few = queries_to_load(client, url)
    add_rows(18)
    many = queries_to_load(client, url)
    assert many == few, f"{url}: {few} queries for 2 rows, {many} for 20"
    assert many <= bound, f"{url}: {many} queries"


def decided_cases(uploader: User, moderator: User) -> Callable[[int], None]:
    """Flagged submissions with two faces each, their cases decided (one event each)."""

    def add(count: int) -> None:
        for _ in range(count):
            submission = SubmissionFactory.create(uploader=uploader)
            for index in (1, 2):
                FaceFactory.create(submission=submission, index=index)
            case = services.review_case_open(submission=submission)
            assert case is not None
            services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)

    return add


@pytest.fixture
def uploader() -> User:
    return UserFactory.create(username="uploader")


@pytest.fixture
def moderator() -> User:
    return ModeratorFactory.create(username="moderator")


def test_my_submissions_page(client: Client, uploader: User, moderator: User) -> None:
    client.force_login(uploader)
    url = reverse("detection:submission-list")
    assert_fixed_query_count(client, url, decided_cases(uploader, moderator))


def test_api_submission_list(client: Client, uploader: User, moderator: User) -> None:
    client.force_login(uploader)
    url = reverse("api:submission-list")
    assert_fixed_query_count(client, url, decided_cases(uploader, moderator))


def test_api_submission_list_of_videos(client: Client, uploader: User) -> None:
    """Each video's tracks come with the list, not with a query per video."""
    client.force_login(uploader)

    def add(count: int) -> None:
        for _ in range(count):
            video = SubmissionFactory.create(
                uploader=uploader,
                media_type=Submission.MediaType.VIDEO,
                duration_s=3.0,
                frames_analysed=6,
                frames_total=6,
            )
            for index in (1, 2):
                Track.objects.create(
                    submission=video,
                    index=index,
                    face=FaceFactory.create(submission=video, index=index),
                    frames=3,
                    good_frames=3,
                    judged=True,
                    fake_probability=0.5,
                    timeline=[[0.2, 0.5], [0.7, 0.5], [1.2, 0.5]],
                    first_s=0.2,
                    last_s=1.2,
                    worst_frame_s=0.2,
                )

    assert_fixed_query_count(client, reverse("api:submission-list"), add)


def test_moderation_queue(client: Client, uploader: User, moderator: User) -> None:
    client.force_login(moderator)

    def add(count: int) -> None:
        for _ in range(count):
            services.review_case_open(submission=SubmissionFactory.create(uploader=uploader))

    assert_fixed_query_count(client, reverse("moderation:queue"), add)


@pytest.mark.parametrize("url_name", ["decision-log", "decision-log-csv", "metrics"])
def test_decision_log_its_csv_and_the_metrics(
    client: Client, uploader: User, moderator: User, url_name: str
) -> None:
    client.force_login(moderator)
    url = reverse(f"moderation:{url_name}")
    assert_fixed_query_count(client, url, decided_cases(uploader, moderator))


def test_case_page_with_the_uploaders_history(
    client: Client, uploader: User, moderator: User
) -> None:
    client.force_login(moderator)
    case = services.review_case_open(submission=SubmissionFactory.create(uploader=uploader))
    assert case is not None
    url = reverse("moderation:case-detail", kwargs={"case_id": case.pk})
    assert_fixed_query_count(client, url, decided_cases(uploader, moderator))


@pytest.mark.parametrize(
    "changelist",
    [
        "detection_submission",
        "detection_face",
        "moderation_reviewcase",
        "moderation_reviewevent",
    ],
)
def test_admin_lists(client: Client, uploader: User, moderator: User, changelist: str) -> None:
    client.force_login(StaffFactory.create(is_superuser=True))
    url = reverse(f"admin:{changelist}_changelist")
    assert_fixed_query_count(client, url, decided_cases(uploader, moderator), bound=20)


def test_an_open_case_count_does_not_matter_either(
    client: Client, uploader: User, moderator: User
) -> None:
    """The queue's state counts are one aggregate, not one query per state or case."""
    client.force_login(moderator)
    decided_cases(uploader, moderator)(3)
    assert ReviewCase.objects.count() == 3
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("moderation:queue"), {"state": "all"})
    assert len(captured) <= MAX_QUERIES


def test_api_case_list(uploader: User, moderator: User) -> None:
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=moderator)}")

    def add(count: int) -> None:
        for _ in range(count):
            case = services.review_case_open(submission=SubmissionFactory.create(uploader=uploader))
            assert case is not None
            services.review_case_claim(case=case, user=moderator)

    assert_fixed_query_count(api, reverse("api:case-list") + "?state=all", add)


def endpoints_of(owner: User) -> Callable[[int], None]:
    def add(count: int) -> None:
        for number in range(count):
            WebhookEndpoint.objects.create(
                owner=owner, url=f"https://hooks.example/{number}", events=["submission.decided"]
            )

    return add


def deliveries_to(endpoint: WebhookEndpoint) -> Callable[[int], None]:
    """Deliveries with two attempts each."""

    def add(count: int) -> None:
        for _ in range(count):
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint, event="submission.decided", event_id=uuid.uuid4(), body="{}"
            )
            for number in (1, 2):
                WebhookAttempt.objects.create(
                    delivery=delivery, number=number, sent_at=timezone.now(), latency_ms=5
                )

    return add


def test_webhook_endpoints_page_and_api(client: Client, uploader: User) -> None:
    client.force_login(uploader)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=uploader)}")
    add = endpoints_of(uploader)
    assert_fixed_query_count(client, reverse("webhooks:endpoints"), add)
    assert_fixed_query_count(api, reverse("api:webhook-list"), add)


def test_webhook_deliveries_page_and_api(client: Client, uploader: User) -> None:
    client.force_login(uploader)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=uploader)}")
    endpoint = WebhookEndpoint.objects.create(
        owner=uploader, url="https://hooks.example/", events=["submission.decided"]
    )
    add = deliveries_to(endpoint)
    page = reverse("webhooks:endpoint-detail", args=[endpoint.id])
    assert_fixed_query_count(client, page, add)
    assert_fixed_query_count(api, reverse("api:webhook-deliveries", args=[endpoint.id]), add)


def test_admin_webhook_lists(client: Client, uploader: User) -> None:
    client.force_login(StaffFactory.create(is_superuser=True))
    endpoint = WebhookEndpoint.objects.create(
        owner=uploader, url="https://hooks.example/", events=["submission.decided"]
    )
    url = reverse("admin:webhooks_webhookendpoint_changelist")
    assert_fixed_query_count(client, url, endpoints_of(uploader), bound=20)
    url = reverse("admin:webhooks_webhookdelivery_changelist")
    assert_fixed_query_count(client, url, deliveries_to(endpoint), bound=20)
