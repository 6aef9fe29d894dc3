"""The analysis service in-process: claiming, storing results, replacing them, giving up."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from conftest import TEST_FRAMES
from detection import services
from detection.ml.images import UnreadableImageError
from detection.models import Face, Submission
from detection.tests.factories import SubmissionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_face_submission(settings: Any, demo_checkpoint: Path) -> Submission:
    settings.DEEPFAKE_CHECKPOINT = str(demo_checkpoint)
    name = default_storage.save(
        "samples/fake_frame_0.jpg", ContentFile((TEST_FRAMES / "fake_frame_0.jpg").read_bytes())
    )
    return SubmissionFactory.create(image=name, width=960, height=540, format="JPEG")


def test_analysis_stores_every_face_its_heatmap_and_the_verdict(
    two_face_submission: Submission,
) -> None:
    services.analysis_run(
        submission_id=two_face_submission.id, task_id="task-1", worker="test@host"
    )
    submission = Submission.objects.get(id=two_face_submission.id)
    assert submission.status == Submission.Status.DONE
    assert submission.attempts == 1
    faces = list(submission.faces.all())
    assert [face.index for face in faces] == [1, 2]
    assert submission.fake_probability == pytest.approx(max(f.fake_probability for f in faces))
    assert submission.verdict in {"fake", "uncertain", "real"}
    assert submission.model_version and submission.model_trained is False
    assert set(submission.timings_ms) >= {"detect", "classify", "total"}
    for face in faces:
        assert face.heatmap.open().read(8).startswith(b"\x89PNG")
        assert 0 <= face.box_x1 < face.box_x2 <= 960
    assert default_storage.exists(str(submission.overlay.name))


def test_analysis_records_the_model_that_scored_the_image(
    two_face_submission: Submission, demo_checkpoint: Path, settings: Any
) -> None:
    """Evidence names the exact weights, thresholds and calibration, as they were."""
    settings.FACE_QUALITY_MIN_SIZE = 61
    services.analysis_run(
        submission_id=two_face_submission.id, task_id="task-1", worker="test@host"
    )
    details = Submission.objects.get(id=two_face_submission.id).model_details
    checkpoint_sha256 = hashlib.sha256(demo_checkpoint.read_bytes()).hexdigest()
    assert details["checkpoint_sha256"] == checkpoint_sha256
    assert details["version"] == checkpoint_sha256[:12]
    assert details["trained"] is False and details["name"]
    assert details["mirror_average"] is False  # the demo model has no card to choose it
    assert set(details["thresholds"]) == {"fake", "uncertain", "set_by", "selection"}
    assert details["calibration"]["temperature"] > 0
    assert details["quality_thresholds"]["min_size_px"] == 61


def test_re_running_an_analysis_replaces_results_instead_of_adding(
    two_face_submission: Submission, private_media_root: Path
) -> None:
    services.analysis_run(
        submission_id=two_face_submission.id, task_id="task-1", worker="test@host"
    )
    files_after_first = sorted(p for p in private_media_root.rglob("*") if p.is_file())
    services.submission_reanalyze(submission=two_face_submission)
    services.analysis_run(
        submission_id=two_face_submission.id, task_id="task-2", worker="test@host"
    )
    assert Face.objects.filter(submission=two_face_submission).count() == 2
    assert sorted(p for p in private_media_root.rglob("*") if p.is_file()) == files_after_first


def test_only_one_task_can_hold_a_claim() -> None:
    submission = SubmissionFactory.create()
    assert services._claim(submission_id=submission.id, task_id="first", worker="w@h")
    assert not services._claim(submission_id=submission.id, task_id="second", worker="w@h")
    assert services._claim(submission_id=submission.id, task_id="first", worker="w@h"), (
        "a redelivery resumes"
    )
    claimed = Submission.objects.get(id=submission.id)
    assert (claimed.attempts, claimed.claimed_by_worker) == (2, "w@h")


def test_submission_that_crashed_its_worker_three_times_is_failed_without_running() -> None:
    submission = SubmissionFactory.create(
        status=Submission.Status.PROCESSING, claimed_by_task="task-1", attempts=3
    )
    services.analysis_run(submission_id=submission.id, task_id="task-1", worker="test@host")
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED
    assert "attempted 3 times" in submission.failure_reason
    assert not submission.faces.exists()


def test_analysis_of_a_deleted_submission_does_nothing() -> None:
    submission = SubmissionFactory.create()
    submission_id = submission.id
    submission.delete()
    services.analysis_run(submission_id=submission_id, task_id="task-1", worker="test@host")
    assert not Submission.objects.exists()


def test_image_that_cannot_be_decoded_fails_at_once_instead_of_using_every_attempt(
    settings: Any,
) -> None:
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = SubmissionFactory.create()
    unreadable = UnreadableImageError("cannot decode image data: broken PNG data")
    with mock.patch.object(services, "_analyze", side_effect=unreadable) as analyze:
        services.analysis_run(submission_id=submission.id, task_id="task-1", worker="test@host")
    analyze.assert_called_once()
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED
    assert submission.attempts == 1
    assert "could not be decoded" in submission.failure_reason


def test_other_analysis_errors_are_retried_while_attempts_remain(settings: Any) -> None:
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = SubmissionFactory.create()
    with (
        mock.patch.object(services, "_analyze", side_effect=MemoryError()),
        pytest.raises(services.RetryableAnalysisError),
    ):
        services.analysis_run(submission_id=submission.id, task_id="task-1", worker="test@host")
    submission.refresh_from_db()
    assert submission.status == Submission.Status.QUEUED
    assert submission.attempts == 1
