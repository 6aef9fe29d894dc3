"""Videos analysed by real Celery worker processes: the API journey, the separate queue, and
a worker killed in the middle of a clip."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from conftest import TEST_FRAMES, WorkerProcess, assert_no_orphaned_files, encode_clip
from deepfake_site.services import api_token_rotate
from detection.models import Submission, Track
from detection.tests.factories import UserFactory
from detection.tests.test_worker import final, redis_broker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

__all__ = ["redis_broker"]  # a fixture, used by name


@pytest.fixture
def start_analysis_worker(
    start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path
) -> Callable[[str], WorkerProcess]:
    def start(queues: str) -> WorkerProcess:
        return start_worker(
            queues=queues,
            env={
                "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
                "TORCH_NUM_THREADS": "1",
                "ANALYSIS_RETRY_DELAY_SECONDS": "0",
            },
        )

    return start


def api_client(username: str) -> Client:
    user = UserFactory.create(username=username)
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def api_upload(api: Client, name: str, data: bytes) -> dict[str, Any]:
    response = api.post(reverse("api:submission-list"), {"image": SimpleUploadedFile(name, data)})
    assert response.status_code == 202, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("name", "clip"),
    [
        ("interview.mp4", {}),
        ("interview.webm", {"codec": "libvpx-vp9", "container": "webm"}),
    ],
    ids=["mp4", "webm"],
)
def test_a_clip_uploaded_through_the_api_is_analysed_and_only_its_owner_gets_the_heatmaps(
    start_analysis_worker: Callable[[str], WorkerProcess], name: str, clip: dict[str, Any]
) -> None:
    start_analysis_worker("video")
    api = api_client("platform")
    created = api_upload(api, name, encode_clip(["real_frame_1"], seconds_each=3, **clip))

    wait_for(created["id"], final)
    body = api.get(str(created["url"])).json()
    assert body["status"] == "done", body["failure_reason"]
    assert body["media_type"] == "video"
    assert body["frames_analysed"] == 6
    (track,) = body["tracks"]
    assert len(track["timeline"]) == track["frames"] == body["frames_analysed"]
    heatmap = api.get(track["heatmap_url"])
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    assert api_client("stranger").get(track["heatmap_url"]).status_code == 404


def test_the_photo_worker_never_takes_a_video(
    start_analysis_worker: Callable[[str], WorkerProcess],
) -> None:
    start_analysis_worker("inference,celery")
    api = api_client("platform")
    video = api_upload(api, "clip.mp4", encode_clip(["real_frame_1"]))
    photo = api_upload(api, "photo.jpg", (TEST_FRAMES / "real_frame_3.jpg").read_bytes())

    assert wait_for(photo["id"], final).status == Submission.Status.DONE
    assert Submission.objects.get(id=video["id"]).status == Submission.Status.QUEUED


def test_a_worker_killed_mid_video_starts_it_again_without_duplicate_tracks(
    start_analysis_worker: Callable[[str], WorkerProcess], redis_broker: None
) -> None:
    worker = start_analysis_worker("video")
    api = api_client("platform")
    clip = encode_clip(["real_frame_1", "real_frame_3"], seconds_each=4)
    created = api_upload(api, "long.mp4", clip)
    submission_id = created["id"]

    wait_for(submission_id, lambda s: (s.frames_analysed or 0) >= 2, timeout=120)
    for child in worker.child_pids():
        os.kill(child, signal.SIGKILL)

    submission = wait_for(submission_id, final)
    assert submission.status == Submission.Status.DONE, submission.failure_reason
    assert submission.attempts == 2
    assert submission.frames_analysed == 16
    tracks = list(Track.objects.filter(submission=submission).values_list("index", flat=True))
    assert tracks == [1, 2]
    assert_no_orphaned_files([submission.id])
