"""Decisions follow the image, end to end: uploads through the API, analysed by a real Celery
worker, decided on the moderation pages."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from PIL import Image

from conftest import TEST_FRAMES, WorkerProcess
from deepfake_site.services import api_token_rotate
from moderation.models import ReviewCase
from moderation.tests.factories import ModeratorFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The untrained demo model finds this frame, and the copy below, likely manipulated.
PHOTO = TEST_FRAMES / "fake_frame_3.jpg"


@pytest.fixture
def analysis_worker(
    start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path
) -> WorkerProcess:
    return start_worker(
        queues="inference,celery",
        env={"DEEPFAKE_CHECKPOINT": str(demo_checkpoint), "TORCH_NUM_THREADS": "1"},
    )


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def upload(client: Client, data: bytes, name: str) -> str:
    image = io.BytesIO(data)
    image.name = name
    response = client.post(reverse("api:submission-list"), {"image": image})
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def analysed(client: Client, submission_id: str, timeout: float = 180) -> dict[str, Any]:
    """The submission as the API shows it the first time its analysis is final."""
    url = reverse("api:submission-detail", args=[submission_id])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(url).json()
        if body["status"] in {"done", "no_face", "failed"}:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{submission_id} not analysed in {timeout} s")


def reencoded(path: Path) -> bytes:
    image = Image.open(path).convert("RGB")
    smaller = image.resize((round(image.width * 0.9), round(image.height * 0.9)))
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def test_a_confirmed_photo_re_encoded_by_another_account_shows_confirmed_once_analysed(
    analysis_worker: WorkerProcess,
) -> None:
    first, second = UserFactory.create(username="a"), UserFactory.create(username="b")
    moderator = ModeratorFactory.create()
    as_first, as_second = api_client(first), api_client(second)

    original = analysed(as_first, upload(as_first, PHOTO.read_bytes(), "swap.jpg"))
    assert original["verdict"] == "fake", original
    assert original["moderation"]["state"] == "pending_review"
    case = ReviewCase.objects.get(submission_id=original["id"])
    moderation = Client()
    moderation.force_login(moderator)
    decided = moderation.post(
        reverse("moderation:case-decide", args=[case.pk]), {"decision": "confirm", "note": ""}
    )
    assert decided.status_code == 302

    copy = analysed(as_second, upload(as_second, reencoded(PHOTO), "copy.jpg"))
    assert copy["status"] == "done", copy["failure_reason"]
    assert copy["moderation"]["state"] == "confirmed_manipulated"
    assert copy["moderation"]["label"] == "confirmed manipulated"
    assert copy["moderation"]["inherited"] is True
    assert copy["pdq"] != original["pdq"]
    assert ReviewCase.objects.count() == 1
    assert not ReviewCase.objects.filter(submission_id=copy["id"]).exists()

    seen_by_moderator = (
        api_client(moderator).get(reverse("api:submission-detail", args=[copy["id"]])).json()
    )
    assert seen_by_moderator["moderation"]["inherited_from"]["case"] == str(case.pk)
    assert [match["submission"] for match in seen_by_moderator["matches"]] == [original["id"]]
