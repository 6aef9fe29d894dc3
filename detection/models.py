"""Uploaded photos and videos, and what the analysis found in them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from detection.pdq_db import PdqHashField, PdqWordsField


class Submission(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        NO_FACE = "no_face", "No face found"
        FAILED = "failed", "Failed"

    class Verdict(models.TextChoices):
        FAKE = "fake", "Likely manipulated"
        UNCERTAIN = "uncertain", "Uncertain"
        # Absence of evidence, never a certificate of authenticity.
        REAL = "real", "No manipulation found"
        # Faces were found, but none good enough to judge.
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    class MediaType(models.TextChoices):
        IMAGE = "image", "Photo"
        VIDEO = "video", "Video"

    FINAL_STATUSES = (Status.DONE, Status.NO_FACE, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions"
    )
    media_type = models.CharField(
        max_length=5, choices=MediaType.choices, default=MediaType.IMAGE, db_index=True
    )
    # Server-generated names only; what the uploader called the file is display text.
    # `image` is the stored upload: the re-encoded photo, or the re-muxed video.
    image = models.FileField(max_length=255)
    thumbnail = models.FileField(max_length=255)
    # A video's poster frame (JPEG, full size); the thumbnail is made from it.
    poster = models.FileField(max_length=255, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    # The PDQ perceptual hash of the decoded pixels and its quality (0-100): re-encoded,
    # resized or lightly edited copies of an image are found by Hamming distance.
    pdq = PdqHashField(null=True, blank=True)
    pdq_words = PdqWordsField(source="pdq")  # the hash's index keys (PostgreSQL)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    # What the original file said about itself (detection.provenance), read before the
    # re-encoding stripped it; never a GPS position.
    provenance = models.JSONField(default=dict, blank=True)
    byte_size = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    duration_s = models.FloatField(null=True, blank=True)
    # A video's sampled frames: how many the analysis will look at, and has looked at so far.
    frames_total = models.PositiveIntegerField(null=True, blank=True)
    frames_analysed = models.PositiveIntegerField(null=True, blank=True)

    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The Celery task id holding the current claim: a redelivery of the same message may
    # resume at once, any other message only after the claim has gone stale.
    claimed_by_task = models.CharField(max_length=64, blank=True)
    # The Celery worker (its node name) that holds the claim: when that worker starts again,
    # it knows the claim died with its previous run and sends the analysis again at once.
    claimed_by_worker = models.CharField(max_length=255, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When the analysis message was last handed to the broker; empty while it never was
    # (the broker was down at upload time): the sweeper sends those first.
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # The claim's last sign of life: set when claimed and as a video's frames are analysed,
    # so a long video is not taken for abandoned while its worker is still at it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    model_version = models.CharField(max_length=64, blank=True)
    model_trained = models.BooleanField(null=True)
    # The thresholds the verdict was decided with, shown beside it.
    flag_threshold = models.FloatField(null=True, blank=True)
    uncertain_threshold = models.FloatField(null=True, blank=True)
    # The model as it was when it scored this image (name, checkpoint hash, thresholds,
    # calibration, face-quality limits): evidence must not depend on what runs today.
    model_details = models.JSONField(default=dict, blank=True)
    verdict = models.CharField(max_length=12, choices=Verdict.choices, blank=True, db_index=True)
    fake_probability = models.FloatField(null=True, blank=True)
    overlay = models.FileField(max_length=255, blank=True)
    timings_ms = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-queued_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("uploader", "sha256"), name="one_submission_per_uploader_and_image"
            ),
        ]
        indexes = [models.Index(fields=("status", "queued_at"))]

    def __str__(self) -> str:
        return f"{self.original_filename or self.id} ({self.get_status_display()})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def is_video(self) -> bool:
        return self.media_type == self.MediaType.VIDEO

    @property
    def processing_ms(self) -> float | None:
        total = self.timings_ms.get("total") if self.timings_ms else None
        return float(total) if total is not None else None


class Face(models.Model):
    class Quality(models.TextChoices):
        OK = "ok", "Good enough to judge"
        LOW = "low", "Too poor to judge"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="faces")
    index = models.PositiveSmallIntegerField()
    box_x1 = models.FloatField()
    box_y1 = models.FloatField()
    box_x2 = models.FloatField()
    box_y2 = models.FloatField()
    detection_probability = models.FloatField()
    fake_probability = models.FloatField()
    crop = models.FileField(max_length=255)
    heatmap = models.FileField(max_length=255)
    # Whether the face was good enough to judge (detection.ml.quality): only `ok` faces
    # decide the verdict and the review priority.
    size_px = models.PositiveIntegerField(default=0)
    sharpness = models.FloatField(default=0)
    yaw = models.FloatField(default=0)
    quality = models.CharField(max_length=3, choices=Quality.choices, default=Quality.OK)
    quality_reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("submission", "index")
        constraints = [
            models.UniqueConstraint(fields=("submission", "index"), name="one_face_per_index"),
        ]

    def __str__(self) -> str:
        return f"Face {self.index} of {self.submission_id}"

    @property
    def box(self) -> list[float]:
        return [self.box_x1, self.box_y1, self.box_x2, self.box_y2]

    @property
    def real_probability(self) -> float:
        return 1.0 - self.fake_probability


class Track(models.Model):
    """One person followed through a video: the frames they appear in and their P(fake).

    `face` is the person's face on their most suspicious frame (with its crop and
    heatmap); it shares the track's index, so a video has one Face row per person.
    """

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="tracks")
    index = models.PositiveSmallIntegerField()
    face = models.OneToOneField(Face, on_delete=models.CASCADE, related_name="track")
    frames = models.PositiveIntegerField()
    good_frames = models.PositiveIntegerField()
    # Enough good frames to count towards the verdict (detection.ml.video_analysis).
    judged = models.BooleanField()
    # The upper-half mean of the counted frames' P(fake) (detection.ml.tracking).
    fake_probability = models.FloatField()
    # [[seconds, P(fake)], ...], one point per sampled frame the person appears in.
    timeline = models.JSONField(default=list)
    first_s = models.FloatField()
    last_s = models.FloatField()
    worst_frame_s = models.FloatField()

    class Meta:
        ordering = ("submission", "index")
        constraints = [
            models.UniqueConstraint(fields=("submission", "index"), name="one_track_per_index"),
        ]

    def __str__(self) -> str:
        return f"Track {self.index} of {self.submission_id}"

    @property
    def counted_frames(self) -> int:
        """The frames its P(fake) was computed from: the good ones when it is judged."""
        return self.good_frames if self.judged else self.frames
