"""Uploads analysed by a real Celery worker process, including crashes and lost messages."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import (
    TEST_FRAMES,
    WorkerProcess,
    assert_no_orphaned_files,
    redis_is_up,
    require_service,
)
from detection import services
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(
    submission_id: uuid.UUID, condition: Callable[[Submission], bool], timeout: float = 180
) -> Submission:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        submission = Submission.objects.get(id=submission_id)
        if condition(submission):
            return submission
        time.sleep(0.05)
    raise AssertionError(
        f"timed out; last state {submission.status} ({submission.attempts} attempts)"
    )


def final(submission: Submission) -> bool:
    return submission.is_final


@pytest.fixture
def analysis_worker(
    start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path
) -> Callable[[], WorkerProcess]:
    def start() -> WorkerProcess:
        return start_worker(
            queues="inference,celery",
            env={
                "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
                "TORCH_NUM_THREADS": "1",
                "ANALYSIS_RETRY_DELAY_SECONDS": "0",
            },
        )

    return start


@pytest.fixture
def redis_broker() -> None:
    require_service(
        settings.CELERY_BROKER_URL.startswith("redis://")
        and redis_is_up(settings.CELERY_BROKER_URL),
        "Redis as the Celery broker (CELERY_BROKER_URL=redis://...)",
    )


def upload_sample(client: Client, name: str) -> Submission:
    with (TEST_FRAMES / name).open("rb") as image:
        response = client.post(reverse("detection:upload"), {"image": image})
    assert response.status_code == 302, response.content
    return Submission.objects.get(original_filename=name)


def test_upload_is_analysed_by_the_worker_and_only_the_owner_sees_the_results(
    client: Client, analysis_worker: Callable[[], WorkerProcess]
) -> None:
    owner = UserFactory.create(username="owner")
    client.force_login(owner)
    analysis_worker()
    submission = upload_sample(client, "fake_frame_0.jpg")

    submission = wait_for(submission.id, final)
    assert submission.status == Submission.Status.DONE, submission.failure_reason
    assert submission.faces.count() == 2
    assert submission.verdict in {"fake", "uncertain", "real"}
    assert submission.model_trained is False
    assert submission.attempts == 1
    detail = client.get(reverse("detection:submission-detail", args=[submission.id]))
    assert b"Face #2" in detail.content
    for face in submission.faces.all():
        heatmap = client.get(reverse("detection:face-heatmap", args=[submission.id, face.index]))
        assert heatmap.status_code == 200
        assert heatmap["Content-Type"] == "image/png"

    client.force_login(UserFactory.create(username="stranger"))
    assert client.get(reverse("detection:face-heatmap", args=[submission.id, 1])).status_code == 404


def test_worker_child_killed_mid_analysis_still_completes_the_submission(
    client: Client, analysis_worker: Callable[[], WorkerProcess], redis_broker: None
) -> None:
    client.force_login(UserFactory.create(username="owner"))
    worker = analysis_worker()
    submission = upload_sample(client, "fake_frame_1.jpg")
    wait_for(submission.id, lambda s: s.status == Submission.Status.PROCESSING, timeout=60)
    for child in worker.child_pids():
        os.kill(child, signal.SIGKILL)

    submission = wait_for(submission.id, final)
    assert submission.status in {Submission.Status.DONE, Submission.Status.NO_FACE}
    assert submission.attempts == 2
    assert_no_orphaned_files([submission.id])


def test_image_that_cannot_be_decoded_fails_after_one_attempt_instead_of_looping(
    client: Client, analysis_worker: Callable[[], WorkerProcess]
) -> None:
    client.force_login(UserFactory.create(username="owner"))
    submission = upload_sample(client, "real_frame_0.jpg")
    # The stored copy goes bad after it was accepted: every analysis attempt would fail.
    with default_storage.open(str(submission.image.name), "wb") as stored:
        stored.write(b"\xff\xd8\xff garbage")
    analysis_worker()

    submission = wait_for(submission.id, final)
    assert submission.status == Submission.Status.FAILED
    assert submission.attempts == 1
    assert "could not be decoded" in submission.failure_reason
    time.sleep(3)
    assert Submission.objects.get(id=submission.id).attempts == 1


def test_sweeper_re_enqueues_submissions_the_broker_lost(
    analysis_worker: Callable[[], WorkerProcess], private_media_root: Path
) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS + 60)
    image = (TEST_FRAMES / "real_frame_1.jpg").read_bytes()
    lost_in_queue = SubmissionFactory.create(
        image=default_storage.save("lost/a.jpg", ContentFile(image))
    )
    abandoned = SubmissionFactory.create(
        image=default_storage.save("lost/b.jpg", ContentFile(image)),
        status=Submission.Status.PROCESSING,
        claimed_by_task="a-worker-that-died",
        attempts=1,
        started_at=long_ago,
    )
    Submission.objects.filter(id=lost_in_queue.id).update(queued_at=long_ago)
    fresh = SubmissionFactory.create(image=default_storage.save("lost/c.jpg", ContentFile(image)))
    analysis_worker()

    requeued = services.submissions_requeue_stuck()
    assert set(requeued) == {lost_in_queue.id, abandoned.id}
    for submission_id in requeued:
        assert wait_for(submission_id, final).status == Submission.Status.DONE
    assert Submission.objects.get(id=fresh.id).status == Submission.Status.QUEUED


def test_worker_processes_load_the_model_before_the_first_analysis(
    client: Client,
    start_worker: Callable[..., WorkerProcess],
    demo_checkpoint: Path,
    tmp_path: Path,
) -> None:
    cache = tmp_path / "model-cache"
    worker = start_worker(
        queues="inference,celery",
        env={
            "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
            "DEEPFAKE_RUNTIME": "onnxruntime",
            "DEEPFAKE_MODEL_CACHE": str(cache),
            "TORCH_NUM_THREADS": "1",
        },
    )
    # Ready means the pool process has loaded the model and exported its graph already.
    deadline = time.monotonic() + 90
    while "ready in" not in worker.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "ready in" in worker.log()
    assert list(cache.glob("classifier-*.onnx")), "the graph is exported at start"
    exported_at_start = worker.log().count("exporting the classifier")

    client.force_login(UserFactory.create(username="owner"))
    submission = wait_for(upload_sample(client, "real_frame_1.jpg").id, final)
    assert submission.status == Submission.Status.DONE
    assert worker.log().count("exporting the classifier") == exported_at_start, (
        "the first analysis did not wait for an export"
    )
