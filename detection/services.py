"""Writes for the detection app: accepting uploads and running their analysis."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import math
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import KombuError
from PIL import Image

from detection.ml.images import UnreadableImageError
from detection.ml.video import UnreadableVideoError, VideoLimits
from detection.models import Face, Submission, Track
from detection.pipeline_config import pipeline_config_from_settings
from detection.validation import (
    RejectionCode,
    UploadLimits,
    UploadRejected,
    ValidatedImage,
    too_large_message,
    validate_image_upload,
)
from detection.video_validation import (
    STORED_DEMUXERS,
    ValidatedVideo,
    VideoContainer,
    VideoUploadLimits,
    validate_video_upload,
    video_container_of,
)
from moderation import services as moderation_services
from webhooks import services as webhook_services

if TYPE_CHECKING:
    from detection.ml.pipeline import AnalysisResult, FaceResult
    from detection.ml.video_analysis import VideoAnalysisResult

logger = logging.getLogger(__name__)

# How long a freshly committed upload may wait for its first message before the sweeper
# sends one.
UNSENT_GRACE_SECONDS = 30


class RetryableAnalysisError(Exception):
    """The analysis failed but has attempts left: the task should run again later."""


class EnvironmentUnavailable(Exception):
    """Storage, the database or the broker failed, not the image: the analysis runs again
    later without spending one of the image's attempts."""


class StorageUnavailable(Exception):
    """The upload could not be stored (read-only or full media storage): nothing was kept."""


class ClaimLost(Exception):
    """Another task took the submission over while this one was analysing it."""


# Bytes read to tell a video container from a photo.
_SNIFF_BYTES = 16
# Seconds between two progress writes of a video's analysis: the page polls every 1.5 s.
_PROGRESS_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class SubmissionCreated:
    submission: Submission
    created: bool  # False when the uploader had already sent these exact bytes
    requeued: bool = False  # those bytes had failed before and are analysed again


def upload_create(*, uploader: User, upload: File, filename: str) -> SubmissionCreated:
    """Accept an uploaded photo or video: the first bytes say which.

    A video goes to `video_submission_create` straight from the uploaded file (never whole
    in memory); anything else is taken for a photo, whose validation names the formats
    accepted when it is neither.
    """
    upload.seek(0)
    container = video_container_of(upload.read(_SNIFF_BYTES))
    upload.seek(0)
    if container is not None:
        return video_submission_create(
            uploader=uploader, upload=upload, filename=filename, container=container
        )
    if upload.size is not None and upload.size > settings.UPLOAD_MAX_BYTES:
        raise UploadRejected(
            RejectionCode.FILE_TOO_LARGE, too_large_message(settings.UPLOAD_MAX_BYTES)
        )
    return submission_create(uploader=uploader, data=upload.read(), filename=filename)


def submission_create(*, uploader: User, data: bytes, filename: str) -> SubmissionCreated:
    """Validate, re-encode and store an uploaded photo, then queue its analysis after commit.

    Raises `UploadRejected` (nothing stored) for anything that is not an acceptable image,
    and when the uploader already has UPLOAD_MAX_IN_FLIGHT uploads waiting for analysis.
    The same uploader sending the same bytes again gets the existing submission back,
    looked up before anything is decoded.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    existing = _existing_upload(uploader, sha256)
    if existing is not None:
        return existing
    # Checked before decoding too, so that an account at its limit costs no decode.
    _refuse_beyond_in_flight_limit(uploader)
    image = validate_image_upload(data, _upload_limits())

    submission = Submission(
        id=uuid.uuid4(),
        uploader=uploader,
        original_filename=sanitize_filename(filename),
        sha256=sha256,
        pdq=image.pdq.hex,
        pdq_quality=image.pdq.quality,
        provenance=image.provenance,
        byte_size=len(data),
        width=image.width,
        height=image.height,
        format=image.format,
    )
    try:
        stored = _store_upload_files(submission, image)
    except OSError as error:
        logger.exception("cannot store the upload of %s", submission.id)
        _delete_files(submission.image.name, submission.thumbnail.name)
        raise StorageUnavailable(str(error)) from error
    return _insert_upload(submission, stored)


def video_submission_create(
    *, uploader: User, upload: File, filename: str, container: VideoContainer
) -> SubmissionCreated:
    """Validate a clip, store its re-muxed copy and poster, then queue its analysis.

    The same rules as for photos (`submission_create`): duplicates found by hash before
    anything is read, the in-flight limit, `UploadRejected` with nothing stored.
    """
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    sha256 = digest.hexdigest()
    existing = _existing_upload(uploader, sha256)
    if existing is not None:
        return existing
    _refuse_beyond_in_flight_limit(uploader)
    upload.seek(0)
    submission = Submission(
        id=uuid.uuid4(),
        uploader=uploader,
        media_type=Submission.MediaType.VIDEO,
        original_filename=sanitize_filename(filename),
        sha256=sha256,
        byte_size=upload.size or 0,
    )
    with tempfile.TemporaryDirectory(prefix="faceproof-video-") as workdir:
        output = f"{workdir}/stored.{container.extension}"
        video = validate_video_upload(
            upload,
            size=upload.size or 0,
            container=container,
            limits=_video_upload_limits(),
            output_path=output,
        )
        submission.width, submission.height = video.width, video.height
        submission.format = video.container.stored_format
        submission.duration_s = round(video.duration_s, 3)
        try:
            stored = _store_video_files(submission, video, output)
        except OSError as error:
            logger.exception("cannot store the upload of %s", submission.id)
            _delete_files(submission.image.name, submission.poster.name, submission.thumbnail.name)
            raise StorageUnavailable(str(error)) from error
    return _insert_upload(submission, stored)


def _existing_upload(uploader: User, sha256: str) -> SubmissionCreated | None:
    existing = Submission.objects.filter(uploader=uploader, sha256=sha256).first()
    if existing is None:
        return None
    if existing.status == Submission.Status.FAILED:
        # The same file again after a failure: another chance, from scratch.
        submission_reanalyze(submission=existing)
        existing.refresh_from_db()
        return SubmissionCreated(existing, created=False, requeued=True)
    return SubmissionCreated(existing, created=False)


def _insert_upload(submission: Submission, stored: list[str]) -> SubmissionCreated:
    """Insert the row of files already stored, or delete them if the row cannot be."""
    uploader = submission.uploader
    try:
        with transaction.atomic():
            # Locking the account's row makes its uploads take turns here, so concurrent
            # ones cannot all pass the in-flight limit. SQLite ignores the lock: there a few
            # simultaneous requests can still pass it together.
            User.objects.select_for_update().get(pk=uploader.pk)
            _refuse_beyond_in_flight_limit(uploader)
            submission.save(force_insert=True)
            _send_analysis_on_commit(submission.id)
    except IntegrityError:
        # Two identical uploads raced; the other one won. Keep no files of ours.
        _delete_files(*stored)
        winner = Submission.objects.get(uploader=uploader, sha256=submission.sha256)
        return SubmissionCreated(winner, created=False)
    except BaseException:
        # Only while nothing is committed: a failure to send after the commit is caught in
        # analysis_send, so the files of a committed submission are never deleted here.
        _delete_files(*stored)
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
            f"You have {in_flight} uploads waiting for analysis and the limit is {limit}; "
            "send more once some have finished.",
        )


def _upload_limits() -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.UPLOAD_MAX_BYTES,
        max_pixels=settings.UPLOAD_MAX_PIXELS,
        max_aspect_ratio=settings.UPLOAD_MAX_ASPECT_RATIO,
        max_decode_bytes=settings.UPLOAD_MAX_DECODE_BYTES,
    )


def _video_upload_limits() -> VideoUploadLimits:
    return VideoUploadLimits(
        max_bytes=settings.VIDEO_MAX_BYTES,
        max_seconds=settings.VIDEO_MAX_SECONDS,
        max_pixels=settings.VIDEO_MAX_PIXELS,
        max_frames=settings.VIDEO_MAX_FRAMES,
    )


def video_time_limits(*, duration_s: float) -> tuple[int, int]:
    """Soft and hard time limits for one video's analysis, growing with its length.

    A photo's limits plus VIDEO_SOFT_TIME_LIMIT_PER_SECOND for each second of clip, the hard
    limit as far past the soft one as a photo's is, and never past VIDEO_TIME_LIMIT_MAX,
    which the settings keep below the broker's visibility timeout (a task still running
    then would be delivered a second time).
    """
    grace = settings.CELERY_TASK_TIME_LIMIT - settings.CELERY_TASK_SOFT_TIME_LIMIT
    soft = settings.CELERY_TASK_SOFT_TIME_LIMIT + math.ceil(
        settings.VIDEO_SOFT_TIME_LIMIT_PER_SECOND * duration_s
    )
    hard = min(soft + grace, settings.VIDEO_TIME_LIMIT_MAX)
    return min(soft, hard - grace), hard


def submission_reanalyze(*, submission: Submission) -> None:
    """Run the analysis again from scratch (an admin action); results are replaced."""
    with transaction.atomic():
        Submission.objects.filter(id=submission.id).update(
            status=Submission.Status.QUEUED,
            attempts=0,
            claimed_by_task="",
            claimed_by_worker="",
            failure_reason="",
            started_at=None,
            finished_at=None,
            queued_at=timezone.now(),
            sent_at=None,
        )
        _send_analysis_on_commit(submission.id)


def analysis_send(*, submission_id: uuid.UUID) -> bool:
    """Hand the analysis to the broker; False when the broker cannot be reached.

    The row is committed before this runs, so a broker outage loses nothing: it is logged,
    the submission stays queued with no `sent_at`, and the sweeper sends it once the broker
    is back. The uploader is told the photo was accepted, which it was.
    """
    from detection.tasks import analyze_submission, analyze_video

    media_type, duration_s = Submission.objects.filter(id=submission_id).values_list(
        "media_type", "duration_s"
    ).first() or (Submission.MediaType.IMAGE, None)
    try:
        if media_type == Submission.MediaType.VIDEO:
            # Its own queue and worker, so that long clips never hold up photos.
            soft, hard = video_time_limits(duration_s=duration_s or 0.0)
            analyze_video.apply_async((str(submission_id),), soft_time_limit=soft, time_limit=hard)
        else:
            analyze_submission.delay(str(submission_id))
    except (KombuError, OSError):
        logger.exception(
            "cannot send the analysis of %s to the broker; the sweeper will", submission_id
        )
        return False
    Submission.objects.filter(id=submission_id).update(sent_at=timezone.now())
    return True


def submissions_requeue_stuck(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Send again the analyses the broker may have lost: the database is the source of truth.

    A queued submission never sent (the broker was down), or sent long ago, and a claim
    without a sign of life for ANALYSIS_STALE_AFTER_SECONDS get a new message. Duplicates
    are harmless: only one task can claim a submission at a time. `queued_at` stays the
    upload time.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS)
    # A send happens right after the commit; give it that moment before calling it lost.
    unsent_before = now - timedelta(seconds=UNSENT_GRACE_SECONDS)
    stuck = list(
        Submission.objects.filter(
            Q(status=Submission.Status.QUEUED, sent_at__isnull=True, queued_at__lt=unsent_before)
            | Q(status=Submission.Status.QUEUED, sent_at__lt=stale_before)
            | _silent_claim(stale_before)
        ).values_list("id", flat=True)
    )
    for submission_id in stuck:
        logger.warning("re-enqueueing stuck submission %s", submission_id)
        analysis_send(submission_id=submission_id)
    return stuck


def submissions_recover_dead_claims(
    *, this_worker: str, live_workers: set[str] | None
) -> list[uuid.UUID]:
    """At a worker's start: send again what workers that died had claimed.

    This worker's own earlier claims died with its previous run (it has just started and
    holds none); with `live_workers` (those that answered a ping), claims of every other
    worker are dead too. Each claim is released only if it is still the one seen, so a
    task that finished meanwhile is left alone.
    """
    dead = Q(claimed_by_worker=this_worker)
    if live_workers is not None:
        dead |= ~Q(claimed_by_worker__in={*live_workers, this_worker})
    claims = list(
        Submission.objects.filter(dead, status=Submission.Status.PROCESSING)
        .exclude(claimed_by_worker="")
        .values_list("id", "claimed_by_task")
    )
    recovered = []
    for submission_id, task_id in claims:
        released = Submission.objects.filter(
            id=submission_id, status=Submission.Status.PROCESSING, claimed_by_task=task_id
        ).update(status=Submission.Status.QUEUED, claimed_by_task="", claimed_by_worker="")
        if released:
            logger.warning("re-sending %s: the worker that claimed it died", submission_id)
            analysis_send(submission_id=submission_id)
            recovered.append(submission_id)
    return recovered


def analysis_run(*, submission_id: uuid.UUID, task_id: str, worker: str) -> None:
    """Claim the submission, analyse its image and store every result in one transaction.

    Raises EnvironmentUnavailable when storage or the database failed (the attempt is given
    back), RetryableAnalysisError when the analysis failed with attempts left.
    """
    if not _claim(submission_id=submission_id, task_id=task_id, worker=worker):
        return
    submission = Submission.objects.get(id=submission_id)
    if submission.attempts > settings.ANALYSIS_MAX_ATTEMPTS:
        analysis_fail(
            submission_id=submission_id,
            reason=(
                f"The analysis was attempted {settings.ANALYSIS_MAX_ATTEMPTS} times and "
                f"never finished; the {'video' if submission.is_video else 'image'} may crash "
                "the analyser."
            ),
        )
        return
    try:
        if submission.is_video:
            video = _analyze_video(submission, task_id=task_id)
            _store_video_result(submission_id=submission_id, task_id=task_id, result=video)
        else:
            result = _analyze(submission)
            _store_result(submission_id=submission_id, task_id=task_id, result=result)
    except ClaimLost:
        logger.warning("claim on %s lost to another task; analysis abandoned", submission_id)
        return
    except Exception as error:
        if _is_environmental(error):
            logger.exception("analysis of %s stopped by its environment", submission_id)
            Submission.objects.filter(id=submission_id, claimed_by_task=task_id).update(
                status=Submission.Status.QUEUED,
                attempts=F("attempts") - 1,
                sent_at=timezone.now(),
            )
            raise EnvironmentUnavailable(str(error)) from error
        logger.exception("analysis of %s failed (attempt %s)", submission_id, submission.attempts)
        # An image or a clip that cannot be decoded fails the same way every time: retrying
        # only spends attempts and worker time.
        if (
            isinstance(error, UnreadableImageError | UnreadableVideoError)
            or submission.attempts >= settings.ANALYSIS_MAX_ATTEMPTS
        ):
            analysis_fail(submission_id=submission_id, reason=_plain_failure(error))
            return
        Submission.objects.filter(id=submission_id, claimed_by_task=task_id).update(
            status=Submission.Status.QUEUED, sent_at=timezone.now()
        )
        raise RetryableAnalysisError(str(error)) from error


def analysis_fail(*, submission_id: uuid.UUID, reason: str) -> None:
    with transaction.atomic():
        failed = Submission.objects.filter(id=submission_id).update(
            status=Submission.Status.FAILED,
            failure_reason=reason,
            finished_at=timezone.now(),
        )
        if failed:
            submission = Submission.objects.get(id=submission_id)
            webhook_services.submission_analysed_notify(submission=submission)


def sanitize_filename(filename: str) -> str:
    """Display text only: the last path component, printable, at most 255 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    return name[:255] or "upload"


def _claim(*, submission_id: uuid.UUID, task_id: str, worker: str) -> bool:
    """A conditional UPDATE: proceed only if exactly this task now holds the submission.

    The attempt counter is committed here, before the heavy work, so a worker that is
    killed mid-analysis still used up an attempt and a poison image cannot loop forever.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS)
    claimable = (
        Q(status=Submission.Status.QUEUED)
        | Q(status=Submission.Status.PROCESSING, claimed_by_task=task_id)
        | _silent_claim(stale_before)
    )
    updated = Submission.objects.filter(claimable, id=submission_id).update(
        status=Submission.Status.PROCESSING,
        attempts=F("attempts") + 1,
        claimed_by_task=task_id,
        claimed_by_worker=worker,
        started_at=now,
        heartbeat_at=now,
        frames_analysed=None,
    )
    return updated == 1


def _silent_claim(stale_before: datetime) -> Q:
    """A claim with no sign of life since `stale_before`: its worker is taken for dead.

    Claims made before heartbeats were recorded have only their start time.
    """
    return Q(status=Submission.Status.PROCESSING) & (
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, started_at__lt=stale_before)
    )


def _analyze(submission: Submission) -> AnalysisResult:
    from detection.ml.pipeline import get_analyzer

    with submission.image.open("rb") as stored:
        data = stored.read()
    return get_analyzer(pipeline_config_from_settings()).analyze(data)


def _analyze_video(submission: Submission, *, task_id: str) -> VideoAnalysisResult:
    from detection.ml.pipeline import get_analyzer
    from detection.ml.video_analysis import VideoSampling, analyze_video
    from detection.pipeline_config import pipeline_config_from_settings

    last_write = 0.0

    def record_progress(done: int, total: int) -> None:
        nonlocal last_write
        now = time.monotonic()
        if done not in (0, total) and now - last_write < _PROGRESS_INTERVAL_SECONDS:
            return
        last_write = now
        # Also the claim's heartbeat; a claim that is no longer ours stops the work.
        still_ours = Submission.objects.filter(
            id=submission.id, claimed_by_task=task_id, status=Submission.Status.PROCESSING
        ).update(frames_analysed=done, frames_total=total, heartbeat_at=timezone.now())
        if not still_ours:
            raise ClaimLost(str(submission.id))

    analyzer = get_analyzer(pipeline_config_from_settings())
    with submission.image.open("rb") as stored:
        return analyze_video(
            analyzer,
            stored.file,
            demuxer=STORED_DEMUXERS[submission.format],
            duration_s=submission.duration_s,
            sampling=VideoSampling(
                per_second=settings.VIDEO_SAMPLE_FPS,
                max_samples=settings.VIDEO_MAX_SAMPLES,
                min_track_frames=settings.VIDEO_MIN_TRACK_FRAMES,
            ),
            limits=VideoLimits(
                max_seconds=settings.VIDEO_MAX_SECONDS,
                max_pixels=settings.VIDEO_MAX_PIXELS,
                max_frames=settings.VIDEO_MAX_FRAMES,
            ),
            on_progress=record_progress,
        )


def _store_result(*, submission_id: uuid.UUID, task_id: str, result: AnalysisResult) -> None:
    with transaction.atomic():
        submission = _still_claimed(submission_id=submission_id, task_id=task_id)
        if submission is None:
            return
        _delete_faces(submission)
        for detected in result.faces:
            _create_face(submission, detected)
        _finish(submission, result)
        submission.save()
        _announce(submission)


def _store_video_result(
    *, submission_id: uuid.UUID, task_id: str, result: VideoAnalysisResult
) -> None:
    """One Face (the most suspicious frame, with crop and heatmap) and one Track per person,
    replacing whatever an earlier attempt stored."""
    with transaction.atomic():
        submission = _still_claimed(submission_id=submission_id, task_id=task_id)
        if submission is None:
            return
        _delete_faces(submission)  # their tracks go with them
        for track in result.tracks:
            Track.objects.create(
                submission=submission,
                index=track.index,
                face=_create_face(submission, track.worst),
                frames=track.frames,
                good_frames=track.good_frames,
                judged=track.judged,
                fake_probability=track.fake_probability,
                timeline=[[round(t, 3), round(p, 6)] for t, p in track.timeline],
                first_s=round(track.first_s, 3),
                last_s=round(track.last_s, 3),
                worst_frame_s=round(track.worst_frame_s, 3),
            )
        _finish(submission, result)
        submission.duration_s = round(result.duration_s, 3)
        submission.frames_analysed = submission.frames_total = result.frames_analysed
        submission.save()
        _announce(submission)


def _still_claimed(*, submission_id: uuid.UUID, task_id: str) -> Submission | None:
    """The submission, locked, while this task still holds its claim; None (and a warning)
    once another task took it over: this task's result is then discarded."""
    submission = Submission.objects.select_for_update().get(id=submission_id)
    if submission.claimed_by_task != task_id or submission.status != Submission.Status.PROCESSING:
        logger.warning("claim on %s lost to another task; result discarded", submission_id)
        return None
    return submission


def _announce(submission: Submission) -> None:
    """A stored result reaches the platform's webhooks and the review queue."""
    # The platform hears of the analysis before any outcome it inherits (review_case_open).
    webhook_services.submission_analysed_notify(submission=submission)
    moderation_services.review_case_open(submission=submission)


def _delete_faces(submission: Submission) -> None:
    for face in submission.faces.all():
        _delete_files(face.crop.name, face.heatmap.name)
    submission.faces.all().delete()


def _create_face(submission: Submission, detected: FaceResult) -> Face:
    prefix = f"{_folder(submission)}/faces/{detected.index}"
    return Face.objects.create(
        submission=submission,
        index=detected.index,
        box_x1=detected.box[0],
        box_y1=detected.box[1],
        box_x2=detected.box[2],
        box_y2=detected.box[3],
        detection_probability=detected.detection_probability,
        fake_probability=detected.fake_probability,
        size_px=detected.quality.size_px,
        sharpness=detected.quality.sharpness,
        yaw=detected.quality.yaw if math.isfinite(detected.quality.yaw) else 99.0,
        quality=Face.Quality.OK if detected.quality.ok else Face.Quality.LOW,
        quality_reasons=[str(reason) for reason in detected.quality.reasons],
        crop=_replace_file(f"{prefix}-crop.png", _png(detected.crop)),
        heatmap=_replace_file(f"{prefix}-heatmap.png", _png(detected.heatmap)),
    )


def _finish(submission: Submission, result: AnalysisResult | VideoAnalysisResult) -> None:
    """The verdict, overlay and model of a finished analysis, on the row (not yet saved)."""
    submission.overlay.name = _replace_file(
        f"{_folder(submission)}/overlay.jpg", _jpeg(result.overlay)
    )
    submission.status = (
        Submission.Status.DONE if result.status == "ok" else Submission.Status.NO_FACE
    )
    submission.verdict = result.verdict or ""
    submission.fake_probability = result.fake_probability
    submission.model_version = result.model.version
    submission.model_trained = result.model.trained
    submission.flag_threshold = result.model.flag_threshold
    submission.uncertain_threshold = result.model.uncertain_threshold
    submission.model_details = {
        **result.model.details(),
        "quality_thresholds": dataclasses.asdict(pipeline_config_from_settings().quality),
    }
    submission.timings_ms = {key: round(value, 1) for key, value in result.timings_ms.items()}
    submission.failure_reason = ""
    submission.finished_at = timezone.now()


def _store_upload_files(submission: Submission, image: ValidatedImage) -> list[str]:
    folder = _folder(submission)
    submission.image.name = default_storage.save(
        f"{folder}/image.{image.extension}", ContentFile(image.data)
    )
    submission.thumbnail.name = default_storage.save(
        f"{folder}/thumbnail.jpg", ContentFile(image.thumbnail)
    )
    return [submission.image.name, submission.thumbnail.name]


def _store_video_files(submission: Submission, video: ValidatedVideo, path: str) -> list[str]:
    folder = _folder(submission)
    with open(path, "rb") as remuxed:
        submission.image.name = default_storage.save(
            f"{folder}/video.{video.container.extension}", File(remuxed)
        )
    submission.poster.name = default_storage.save(f"{folder}/poster.jpg", ContentFile(video.poster))
    submission.thumbnail.name = default_storage.save(
        f"{folder}/thumbnail.jpg", ContentFile(video.thumbnail)
    )
    return [submission.image.name, submission.poster.name, submission.thumbnail.name]


def _send_analysis_on_commit(submission_id: uuid.UUID) -> None:
    transaction.on_commit(functools.partial(analysis_send, submission_id=submission_id))


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


def _is_environmental(error: Exception) -> bool:
    """A failure of what the analysis runs on (storage, database, broker), not of the image.

    A missing stored file is the image's: it will not come back. Any other OSError (a
    read-only or full disk, a lost network share) is the storage's.
    """
    if isinstance(error, FileNotFoundError):
        return False
    return isinstance(error, OSError | DatabaseError | KombuError)


def _plain_failure(error: Exception) -> str:
    if isinstance(error, SoftTimeLimitExceeded):
        return (
            f"The analysis ran past its time limit on each of its "
            f"{settings.ANALYSIS_MAX_ATTEMPTS} attempts."
        )
    if isinstance(error, UnreadableImageError):
        return "The stored image could not be decoded, so no face could be analysed."
    if isinstance(error, UnreadableVideoError):
        return (
            f"The stored video could not be decoded to the end ({error}), so it was not analysed."
        )
    attempts = settings.ANALYSIS_MAX_ATTEMPTS
    return f"The analysis failed after {attempts} attempts ({type(error).__name__})."
