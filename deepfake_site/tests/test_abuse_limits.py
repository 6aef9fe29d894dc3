"""Upload rate limits answer 429; repeated wrong passwords lock the account out for a while."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token

from detection.models import Submission
from detection.tests.factories import UserFactory
from detection.validation import RejectionCode

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def distinct_jpeg(seed: int) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 37 % 256, seed * 91 % 256, 128)).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = f"photo-{seed}.jpg"
    return buffer


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[mock.MagicMock]:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


def test_uploads_past_the_per_user_limit_get_429_with_a_clear_message(
    client: Client, settings: Any
) -> None:
    settings.UPLOAD_RATE_PER_USER = "3/m"
    client.force_login(UserFactory.create())
    statuses = [
        client.post(reverse("detection:upload"), {"image": distinct_jpeg(n)}).status_code
        for n in range(4)
    ]
    assert statuses == [302, 302, 302, 429]
    refused = client.post(reverse("detection:upload"), {"image": distinct_jpeg(99)})
    assert "Too many uploads" in refused.content.decode()
    assert "3 per minute" in refused.content.decode()
    assert Submission.objects.count() == 3


def test_api_uploads_past_the_per_address_limit_get_429_json(settings: Any) -> None:
    settings.UPLOAD_RATE_PER_IP = "2/m"
    answers = []
    for n in range(3):
        # Different accounts from one address: the address limit still applies.
        token = Token.objects.create(user=UserFactory.create()).key
        api = Client(HTTP_AUTHORIZATION=f"Token {token}")
        answers.append(api.post(reverse("api:submission-list"), {"image": distinct_jpeg(n)}))
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[-1].json()["code"] == RejectionCode.RATE_LIMITED
    assert "Too many uploads" in answers[-1].json()["detail"]


def test_uploads_beyond_those_in_flight_get_429_and_store_nothing(
    client: Client, settings: Any, private_media_root: Path
) -> None:
    settings.UPLOAD_MAX_IN_FLIGHT = 2
    user = UserFactory.create()
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    upload_url = reverse("api:submission-list")
    assert [api.post(upload_url, {"image": distinct_jpeg(n)}).status_code for n in (0, 1)] == [
        202,
        202,
    ]
    Submission.objects.filter(original_filename="photo-1.jpg").update(
        status=Submission.Status.PROCESSING
    )
    stored = sorted(private_media_root.rglob("*"))

    refused = api.post(upload_url, {"image": distinct_jpeg(2)})
    assert refused.status_code == 429
    assert refused.json()["code"] == RejectionCode.TOO_MANY_IN_FLIGHT
    assert "2 photos" in refused.json()["detail"]
    client.force_login(user)
    page = client.post(reverse("detection:upload"), {"image": distinct_jpeg(3)})
    assert page.status_code == 429
    assert "2 photos" in page.content.decode()
    assert Submission.objects.count() == 2
    assert sorted(private_media_root.rglob("*")) == stored
    assert api.post(upload_url, {"image": distinct_jpeg(0)}).status_code == 200, "no new work"

    Submission.objects.filter(original_filename="photo-1.jpg").update(status=Submission.Status.DONE)
    assert api.post(upload_url, {"image": distinct_jpeg(4)}).status_code == 202


def test_rate_limits_do_not_touch_reading_results(client: Client, settings: Any) -> None:
    settings.UPLOAD_RATE_PER_USER = "1/m"
    client.force_login(UserFactory.create())
    client.post(reverse("detection:upload"), {"image": distinct_jpeg(1)})
    client.post(reverse("detection:upload"), {"image": distinct_jpeg(2)})
    assert client.get(reverse("detection:submission-list")).status_code == 200


def test_repeated_wrong_passwords_lock_the_account_then_the_cool_off_releases_it(
    settings: Any,
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory.create(username="target")
    browser = Client()
    for _ in range(3):
        browser.post(reverse("login"), {"username": "target", "password": "guess"})
    locked = browser.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    assert "_auth_user_id" not in browser.session

    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time="2000-01-01T00:00:00Z")  # the cool-off passed
    browser.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert "_auth_user_id" in browser.session
