"""Writes for the detection app: accepting uploads and running their analysis."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image

from detection.ml.images import UnreadableImageError
from detection.models import Face, Submission
from detection.validation import (
    RejectionCode,
    UploadLimits,
    UploadRejected,
    ValidatedImage,
    validate_image_upload,
)
from moderation import services as moderation_services

if TYPE_CHECKING:
    from detection.ml.pipeline import AnalysisResult

logger = logging.getLogger(__name__)


class RetryableAnalysisError(Exception):
    """The analysis failed but has attempts left: the task should run again later."""


@dataclass(frozen=True)
class SubmissionCreated:
    submission: Submission
    created: bool  # False when the uploader had already sent these exact bytes


def submission_create(*, uploader: User, data: bytes, filename: str) -> SubmissionCreated:
    """Validate, re-encode and store an upload, then queue its analysis after commit.

    Raises `UploadRejected` (nothing stored) for anything that is not an acceptable image,
    and when the uploader already has UPLOAD_MAX_IN_FLIGHT uploads waiting for analysis.
    The same uploader sending the same bytes again gets the existing submission back,
    looked up before anything is decoded.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Submission.objects.filter(uploader=uploader, sha256=sha256).first()
    if existing is not None:
        return SubmissionCreated(existing, created=False)
    # Checked before decoding too, so that an account at its limit costs no decode.
    _refuse_beyond_in_flight_limit(uploader)
    image = validate_image_upload(data, _upload_limits())

    submission = Submission(
        id=uuid.uuid4(),
        uploader=uploader,
        original_filename=sanitize_filename(filename),
        sha256=sha256,
        byte_size=len(data),
        width=image.width,
        height=image.height,
        format=image.format,
    )
    stored = _store_upload_files(submission, image)
    try:
        with transaction.atomic():
            # Locking the account's row makes its uploads take turns here, so concurrent
            # ones cannot all pass the in-flight limit. SQLite ignores the lock: there a few
            # simultaneous requests can still pass it together.
            User.objects.select_for_update().get(pk=uploader.pk)
            _refuse_beyond_in_flight_limit(uploader)
            submission.save(force_insert=True)
            _enqueue_analysis_on_commit(submission)
    except IntegrityError:
        # Two identical uploads raced; the other one won. Keep no files of ours.
        for name in stored:
            default_storage.delete(name)
        winner = Submission.objects.get(uploader=uploader, sha256=sha256)
        return SubmissionCreated(winner, created=False)
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    return SubmissionCreated(submission, created=True)


def _refuse_beyond_in_flight_limit(uploader: User) -> None:
    """One account may have only so many uploads queued or processing at once."""
    limit = settings.UPLOAD_MAX_IN_FLIGHT
    in_flight = Submission.objects.filter(
        uploader=uploader, status__in=(Submission.Status.QUEUED, Submission.Status.PROCESSING)
    ).count()
    if in_flight >= limit:
        raise UploadRejected(
            RejectionCode.TOO_MANY_IN_FLIGHT,
            f"You have {in_flight} photos waiting for analysis and the limit is {limit}; "
            "send more once some have finished.",
        )


def _upload_limits() -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.UPLOAD_MAX_BYTES,
        max_pixels=settings.UPLOAD_MAX_PIXELS,
        max_aspect_ratio=settings.UPLOAD_MAX_ASPECT_RATIO,
        max_decode_bytes=settings.UPLOAD_MAX_DECODE_BYTES,
    )


def submission_reanalyze(*, submission: Submission) -> None:
    """Run the analysis again from scratch (an admin action); results are replaced."""
    with transaction.atomic():
        Submission.objects.filter(id=submission.id).update(
            status=Submission.Status.QUEUED,
            attempts=0,
            claimed_by_task="",
            failure_reason="",
            started_at=None,
            finished_at=None,
            queued_at=timezone.now(),
        )
        _enqueue_analysis_on_commit(submission)


def submissions_requeue_stuck(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Send again the analyses the broker may have lost: the database is the source of truth.

    A submission still queued long after its message was sent, or processing under a claim
    older than ANALYSIS_STALE_AFTER_SECONDS, gets a new message. Duplicates are harmless:
    only one task can claim a submission at a time.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS)
    stuck = list(
        Submission.objects.filter(
            Q(status=Submission.Status.QUEUED, queued_at__lt=stale_before)
            | Q(status=Submission.Status.PROCESSING, started_at__lt=stale_before)
        ).values_list("id", flat=True)
    )
    from detection.tasks import analyze_submission

    for submission_id in stuck:
        logger.warning("re-enqueueing stuck submission %s", submission_id)
        # The queued clock restarts so that one sweep does not pile up messages every minute.
        Submission.objects.filter(id=submission_id, status=Submission.Status.QUEUED).update(
            queued_at=now
        )
        analyze_submission.delay(str(submission_id))
    return stuck


def analysis_run(*, submission_id: uuid.UUID, task_id: str) -> None:
    """Claim the submission, analyse its image and store every result in one transaction."""
    if not _claim(submission_id=submission_id, task_id=task_id):
        return
    submission = Submission.objects.get(id=submission_id)
    if submission.attempts > settings.ANALYSIS_MAX_ATTEMPTS:
        analysis_fail(
            submission_id=submission_id,
            reason=(
                f"The analysis was attempted {settings.ANALYSIS_MAX_ATTEMPTS} times and "
                "never finished; the image may crash the analyser."
            ),
        )
        return
    try:
        result = _analyze(submission)
        _store_result(submission_id=submission_id, task_id=task_id, result=result)
    except Exception as error:
        logger.exception("analysis of %s failed (attempt %s)", submission_id, submission.attempts)
        # An image that cannot be decoded fails the same way every time: retrying only
        # spends attempts and worker time.
        if (
            isinstance(error, UnreadableImageError)
            or submission.attempts >= settings.ANALYSIS_MAX_ATTEMPTS
        ):
            analysis_fail(submission_id=submission_id, reason=_plain_failure(error))
            return
        Submission.objects.filter(id=submission_id, claimed_by_task=task_id).update(
            status=Submission.Status.QUEUED
        )
        raise RetryableAnalysisError(str(error)) from error


def analysis_fail(*, submission_id: uuid.UUID, reason: str) -> None:
    Submission.objects.filter(id=submission_id).update(
        status=Submission.Status.FAILED,
        failure_reason=reason,
        finished_at=timezone.now(),
    )


def sanitize_filename(filename: str) -> str:
    """Display text only: the last path component, printable, at most 255 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    return name[:255] or "upload"


def _claim(*, submission_id: uuid.UUID, task_id: str) -> bool:
    """A conditional UPDATE: proceed only if exactly this task now holds the submission.

    The attempt counter is committed here, before the heavy work, so a worker that is
    killed mid-analysis still used up an attempt and a poison image cannot loop forever.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS)
    claimable = (
        Q(status=Submission.Status.QUEUED)
        | Q(status=Submission.Status.PROCESSING, claimed_by_task=task_id)
        | Q(status=Submission.Status.PROCESSING, started_at__lt=stale_before)
    )
    updated = Submission.objects.filter(claimable, id=submission_id).update(
        status=Submission.Status.PROCESSING,
        attempts=F("attempts") + 1,
        claimed_by_task=task_id,
        started_at=now,
    )
    return updated == 1


def _analyze(submission: Submission) -> AnalysisResult:
    from detection.ml.pipeline import get_analyzer
    from detection.pipeline_config import pipeline_config_from_settings

    with submission.image.open("rb") as stored:
        data = stored.read()
    return get_analyzer(pipeline_config_from_settings()).analyze(data)


def _store_result(*, submission_id: uuid.UUID, task_id: str, result: AnalysisResult) -> None:
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(id=submission_id)
        if (
            submission.claimed_by_task != task_id
            or submission.status != Submission.Status.PROCESSING
        ):
            logger.warning("claim on %s lost to another task; result discarded", submission_id)
            return
        for face in submission.faces.all():
            _delete_files(face.crop.name, face.heatmap.name)
        submission.faces.all().delete()
        folder = _folder(submission)
        for detected in result.faces:
            prefix = f"{folder}/faces/{detected.index}"
            Face.objects.create(
                submission=submission,
                index=detected.index,
                box_x1=detected.box[0],
                box_y1=detected.box[1],
                box_x2=detected.box[2],
                box_y2=detected.box[3],
                detection_probability=detected.detection_probability,
                fake_probability=detected.fake_probability,
                crop=_replace_file(f"{prefix}-crop.png", _png(detected.crop)),
                heatmap=_replace_file(f"{prefix}-heatmap.png", _png(detected.heatmap)),
            )
        submission.overlay.name = _replace_file(f"{folder}/overlay.jpg", _jpeg(result.overlay))
        submission.status = (
            Submission.Status.DONE if result.status == "ok" else Submission.Status.NO_FACE
        )
        submission.verdict = result.verdict or ""
        submission.fake_probability = result.fake_probability
        submission.model_version = result.model.version
        submission.model_trained = result.model.trained
        submission.timings_ms = {key: round(value, 1) for key, value in result.timings_ms.items()}
        submission.failure_reason = ""
        submission.finished_at = timezone.now()
        submission.save()
        moderation_services.review_case_open(submission=submission)


def _store_upload_files(submission: Submission, image: ValidatedImage) -> list[str]:
    folder = _folder(submission)
    submission.image.name = default_storage.save(
        f"{folder}/image.{image.extension}", ContentFile(image.data)
    )
    submission.thumbnail.name = default_storage.save(
        f"{folder}/thumbnail.jpg", ContentFile(image.thumbnail)
    )
    return [submission.image.name, submission.thumbnail.name]


def _enqueue_analysis_on_commit(submission: Submission) -> None:
    from detection.tasks import analyze_submission

    # celery-types does not know delay_on_commit (Celery 5.4+) yet.
    analyze_submission.delay_on_commit(str(submission.id))  # type: ignore[attr-defined]


def _folder(submission: Submission) -> str:
    return f"submissions/{submission.id}"


def _replace_file(name: str, data: bytes) -> str:
    """Write under a fixed name, so that a retried analysis replaces rather than adds."""
    _delete_files(name)
    return default_storage.save(name, ContentFile(data))


def _delete_files(*names: str | None) -> None:
    for name in names:
        if name and default_storage.exists(name):
            default_storage.delete(name)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _plain_failure(error: Exception) -> str:
    if isinstance(error, UnreadableImageError):
        return "The stored image could not be decoded, so no face could be analysed."
    attempts = settings.ANALYSIS_MAX_ATTEMPTS
    return f"The analysis failed after {attempts} attempts ({type(error).__name__})."
