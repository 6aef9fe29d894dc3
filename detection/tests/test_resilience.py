"""When something the service depends on fails, no photo is lost and every answer is clear:
a broker outage at upload time, unwritable storage, the rate-limit cache down, API paths
that do not exist."""

from __future__ import annotations

import errno
import io
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image

from conftest import TEST_FRAMES
from deepfake_site.services import api_token_rotate
from detection import services
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory
from detection.validation import RejectionCode


def jpeg_file(color: str = "teal") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = "photo.jpg"
    return buffer


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


@pytest.fixture
def api(db: None) -> Client:
    user = UserFactory.create(username="platform")
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def broker_down(*_args: Any, **_kwargs: Any) -> None:
    raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.django_db(transaction=True)
def test_upload_during_a_broker_outage_is_accepted_kept_and_sent_by_the_sweeper(
    api: Client, private_media_root: Path
) -> None:
    with mock.patch("detection.tasks.analyze_submission.delay", side_effect=broker_down):
        response = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert response.status_code == 202, response.content
    submission = Submission.objects.get()
    assert (submission.status, submission.sent_at) == (Submission.Status.QUEUED, None)
    assert len(stored_files(private_media_root)) == 2, "the photo and its thumbnail are kept"

    later = timezone.now() + timedelta(seconds=services.UNSENT_GRACE_SECONDS + 1)
    with mock.patch("detection.tasks.analyze_submission.delay") as send:
        assert services.submissions_requeue_stuck(now=later) == [submission.id]
    send.assert_called_once_with(str(submission.id))
    sent = Submission.objects.get()
    assert sent.sent_at is not None and sent.queued_at == submission.queued_at


@pytest.mark.django_db
def test_upload_while_storage_is_unwritable_answers_503_and_keeps_nothing(
    api: Client, private_media_root: Path
) -> None:
    read_only = OSError(errno.EROFS, "Read-only file system")
    with mock.patch.object(default_storage, "save", side_effect=read_only):
        response = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert response.status_code == 503
    assert response.json()["code"] == RejectionCode.STORAGE_UNAVAILABLE
    assert int(response["Retry-After"]) > 0
    assert not Submission.objects.exists() and stored_files(private_media_root) == []


@pytest.mark.django_db
def test_storage_failure_during_analysis_keeps_the_attempts_and_retries(
    settings: Any, demo_checkpoint: Path
) -> None:
    settings.DEEPFAKE_CHECKPOINT = str(demo_checkpoint)
    settings.DEEPFAKE_RUNTIME = "torch"
    data = (TEST_FRAMES / "real_frame_1.jpg").read_bytes()
    submission = SubmissionFactory.create(format="JPEG")
    submission.image.name = default_storage.save(
        f"submissions/{submission.id}/image.jpg", ContentFile(data)
    )
    submission.save()
    read_only = OSError(errno.EROFS, "Read-only file system")
    with (
        mock.patch.object(services, "_replace_file", side_effect=read_only),
        pytest.raises(services.EnvironmentUnavailable),
    ):
        services.analysis_run(submission_id=submission.id, task_id="t1", worker="w@h")
    waiting = Submission.objects.get(id=submission.id)
    assert (waiting.status, waiting.attempts) == (Submission.Status.QUEUED, 0)
    assert not waiting.faces.exists()

    services.analysis_run(submission_id=submission.id, task_id="t2", worker="w@h")
    done = Submission.objects.get(id=submission.id)
    assert (done.status, done.attempts) == (Submission.Status.DONE, 1)


@pytest.mark.django_db
def test_re_uploading_a_failed_photo_queues_it_again(api: Client) -> None:
    photo = jpeg_file("crimson")
    with mock.patch("detection.tasks.analyze_submission.delay"):
        first = api.post(reverse("api:submission-list"), {"image": photo})
    Submission.objects.filter(id=first.json()["id"]).update(
        status=Submission.Status.FAILED, attempts=3, failure_reason="The analysis failed."
    )
    photo.seek(0)
    again = api.post(reverse("api:submission-list"), {"image": photo})
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    submission = Submission.objects.get()
    assert (submission.status, submission.attempts, submission.failure_reason) == (
        Submission.Status.QUEUED,
        0,
        "",
    )


@pytest.mark.django_db
def test_uploads_while_the_rate_limit_cache_is_down_get_503_json(
    api: Client, settings: Any
) -> None:
    # Nothing listens on port 9: every cache call fails to connect.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    response = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert response.status_code == 503
    assert response.json()["code"] == RejectionCode.SERVICE_UNAVAILABLE
    assert int(response["Retry-After"]) > 0
    assert not Submission.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here/",
        "/api/v1/submissions/not-a-uuid/",
        "/api/v1/submissions/00000000-0000-0000-0000-000000000000/",
    ],
)
def test_unknown_api_paths_and_ids_answer_404_json(api: Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response.json()["detail"]


@pytest.mark.django_db
def test_too_many_form_fields_answer_400_json(api: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"field{index}": "x" for index in range(10)}
    response = api.post(reverse("api:submission-list"), {"image": jpeg_file(), **fields})
    assert response.status_code == 400
    assert response.json()["code"] == RejectionCode.REQUEST_TOO_LARGE
    assert not Submission.objects.exists()
