"""Several photos in one request, from the API and the web form: each through the one upload
gate, each with its own answer."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from PIL import Image

from deepfake_site.services import api_token_rotate
from detection.models import Submission
from detection.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def jpeg(seed: int, name: str | None = None, size: int = 48) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (seed * 37 % 256, seed * 91 % 256, 128)).save(
        buffer, format="JPEG"
    )
    buffer.seek(0)
    buffer.name = name or f"photo-{seed}.jpg"
    return buffer


def not_an_image(name: str = "notes.jpg") -> io.BytesIO:
    buffer = io.BytesIO(b"GIF89a this is not a photo at all")
    buffer.name = name
    return buffer


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[mock.MagicMock]:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


@pytest.fixture
def platform() -> User:
    return UserFactory.create(username="platform")


@pytest.fixture
def api(platform: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=platform)}")


def upload(client: Client, *files: io.BytesIO) -> Any:
    return client.post(reverse("api:submission-list"), {"image": list(files)})


def test_several_photos_get_207_with_an_answer_each_in_the_order_sent(
    api: Client, no_broker: mock.MagicMock, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, jpeg(1), jpeg(1, "same-again.jpg"), not_an_image(), jpeg(2))
    assert response.status_code == 207
    results = response.json()["results"]
    assert [(r["filename"], r["outcome"], r["status"]) for r in results] == [
        ("photo-1.jpg", "accepted", 202),
        ("same-again.jpg", "duplicate", 200),
        ("notes.jpg", "rejected", 400),
        ("photo-2.jpg", "accepted", 202),
    ]
    first, duplicate, rejected, second = results
    assert duplicate["id"] == first["id"]
    assert first["url"].endswith(reverse("api:submission-detail", args=[first["id"]]))
    assert (rejected["code"], rejected["id"], rejected["url"]) == ("unsupported_format", None, None)
    assert "not a JPEG, PNG or WebP" in rejected["detail"]
    assert {str(s.id) for s in Submission.objects.all()} == {first["id"], second["id"]}
    assert no_broker.call_count == 2  # one analysis for each photo stored


def test_one_photo_too_large_is_refused_alone_and_the_next_is_still_read(
    api: Client, settings: Any
) -> None:
    small = jpeg(1)
    settings.UPLOAD_MAX_BYTES = len(small.getvalue()) + 10
    large = jpeg(2, "large.jpg", size=400)
    response = upload(api, small, large, jpeg(3))
    results = response.json()["results"]
    assert [(r["filename"], r["outcome"], r["code"]) for r in results] == [
        ("photo-1.jpg", "accepted", None),
        ("large.jpg", "rejected", "file_too_large"),
        ("photo-3.jpg", "accepted", None),
    ]
    assert results[1]["status"] == 413
    assert Submission.objects.count() == 2


def test_each_photo_counts_against_the_rate_limit(api: Client, settings: Any) -> None:
    settings.UPLOAD_RATE_PER_USER = "2/m"
    results = upload(api, jpeg(1), jpeg(2), jpeg(3)).json()["results"]
    assert [r["outcome"] for r in results] == ["accepted", "accepted", "rejected"]
    assert (results[2]["status"], results[2]["code"]) == (429, "throttled")
    assert results[2]["retry_after"] >= 1
    # The limit is spent: the next request is refused before its body is read.
    refused = upload(api, jpeg(4))
    assert refused.status_code == 429 and "Retry-After" in refused


def test_more_photos_than_allowed_refuses_the_whole_request(api: Client, settings: Any) -> None:
    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = upload(api, jpeg(1), jpeg(2), jpeg(3))
    assert response.status_code == 400
    assert response.json()["code"] == "request_too_large"
    assert not Submission.objects.exists()


def test_one_photo_keeps_its_single_answer(api: Client) -> None:
    response = upload(api, jpeg(1))
    assert response.status_code == 202
    assert response.json()["id"] == str(Submission.objects.get().id)


def test_the_web_form_without_javascript_answers_each_photo_on_the_page(
    client: Client, platform: User
) -> None:
    client.force_login(platform)
    response = client.post(reverse("detection:upload"), {"image": [jpeg(1), not_an_image()]})
    assert response.status_code == 200
    page = response.content.decode()
    submission = Submission.objects.get()
    assert reverse("detection:submission-detail", args=[submission.id]) in page
    assert "notes.jpg" in page and "not a JPEG, PNG or WebP" in page


def test_the_web_form_answers_with_the_first_reason_when_every_photo_is_refused(
    client: Client, platform: User
) -> None:
    client.force_login(platform)
    response = client.post(
        reverse("detection:upload"), {"image": [not_an_image("a.jpg"), not_an_image("b.jpg")]}
    )
    assert response.status_code == 400
    assert response.content.decode().count("not a JPEG, PNG or WebP") == 2
    assert not Submission.objects.exists()


def test_the_upload_page_offers_several_photos_at_once(client: Client, platform: User) -> None:
    client.force_login(platform)
    page = client.get(reverse("detection:upload")).content.decode()
    assert 'type="file"' in page and " multiple" in page
    assert f'data-api-url="{reverse("api:submission-list")}"' in page
