"""The evidence package of a submission: what was analysed, by which model, what it found,
and who decided what, in one self-contained document.

`evidence_build` gathers it as plain data (images embedded as base64 with their sha256);
`EvidenceSerializer` is its exact shape, which the API answers in JSON and documents, and
`moderation.evidence_pdf` lays the same data out as a PDF.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework import serializers

from detection.models import Face, Submission
from moderation.models import InheritedOutcome, ReviewCase
from moderation.selectors import review_case_events, review_case_outcome

EVIDENCE_FORMAT = 1


def evidence_build(
    *, submission: Submission, requested_by: User, now: datetime | None = None
) -> dict[str, Any]:
    now = now or timezone.now()
    case = ReviewCase.objects.select_related("decided_by").filter(submission=submission).first()
    inherited = (
        None
        if case is not None
        else InheritedOutcome.objects.select_related(
            "source_case__decided_by", "source_case__submission"
        )
        .filter(submission=submission)
        .first()
    )
    if inherited is not None:
        # No case of its own: the decision on the near-copy is this submission's outcome.
        case = inherited.source_case
    return {
        "format": EVIDENCE_FORMAT,
        "generated_at": now,
        "generated_by": requested_by.get_username(),
        "site": settings.SITE_URL,
        "submission": {
            "id": submission.id,
            "original_filename": submission.original_filename,
            "uploader": submission.uploader.get_username(),
            "uploaded_at": submission.queued_at,
            "analysed_at": submission.finished_at,
            "status": submission.status,
            "verdict": submission.verdict or None,
            "fake_probability": submission.fake_probability,
            "failure_reason": submission.failure_reason or None,
        },
        "file": {
            # What the uploader sent and what is stored differ: every upload is re-encoded.
            "upload_sha256": submission.sha256,
            "stored_sha256": _file_sha256(submission.image.name),
            "byte_size": submission.byte_size,
            "width": submission.width,
            "height": submission.height,
            "format": submission.format,
            **_perceptual_hash(submission),
        },
        "provenance": _provenance(submission),
        "model": _model(submission),
        "faces": [_face(face) for face in submission.faces.order_by("index")],
        "overlay": _image(submission.overlay.name),
        "moderation": _moderation(case, inherited),
        "decision_chain": _decision_chain(case),
    }


def _perceptual_hash(submission: Submission) -> dict[str, Any]:
    # None for uploads made before hashes were kept.
    return {"pdq": submission.pdq, "pdq_quality": submission.pdq_quality}


def _provenance(submission: Submission) -> dict[str, Any] | None:
    """The summary of the file's own metadata (detection.provenance) read before it was
    re-encoded; None for uploads made before it was kept."""
    return submission.provenance or None


def _model(submission: Submission) -> dict[str, Any]:
    # Recorded at analysis time; submissions analysed before that was kept have only the
    # version and whether it was trained, and say so with nulls.
    details = submission.model_details or {}
    thresholds = details.get("thresholds") or {}
    calibration = details.get("calibration") or {}
    return {
        "name": details.get("name"),
        "version": submission.model_version or None,
        "checkpoint_sha256": details.get("checkpoint_sha256"),
        "trained": submission.model_trained,
        "input_size": details.get("input_size"),
        # Recorded since cards could choose it; None for scores recorded before.
        "mirror_average": details.get("mirror_average"),
        "thresholds": {
            "fake": thresholds.get("fake"),
            "uncertain": thresholds.get("uncertain"),
            "set_by": thresholds.get("set_by"),
            "selection": thresholds.get("selection"),
        },
        "calibration": {
            "temperature": calibration.get("temperature"),
            # Scores recorded before calibrations had a bias were computed without one.
            "bias": calibration.get("bias", 0.0 if "temperature" in calibration else None),
            "method": calibration.get("method"),
        },
        "quality_thresholds": details.get("quality_thresholds"),
    }


def _face(face: Face) -> dict[str, Any]:
    return {
        "index": face.index,
        "box": face.box,
        "detection_probability": face.detection_probability,
        "fake_probability": face.fake_probability,
        "real_probability": face.real_probability,
        "size_px": face.size_px,
        "sharpness": face.sharpness,
        "yaw": face.yaw,
        "quality": face.quality,
        "quality_reasons": face.quality_reasons,
        "crop": _image(face.crop.name),
        "heatmap": _image(face.heatmap.name),
    }


def _moderation(
    case: ReviewCase | None, inherited: InheritedOutcome | None
) -> dict[str, Any] | None:
    if case is None:
        return None
    outcome = review_case_outcome(case=case)
    return {
        "inherited_from": (
            {
                "submission_id": case.submission_id,
                "case_id": case.pk,
                "pdq_distance": inherited.distance,
            }
            if inherited is not None
            else None
        ),
        "case_id": case.pk,
        "state": case.state,
        "state_label": case.get_state_display(),
        "outcome": outcome.state,
        "model_verdict_at_review": case.verdict,
        "opened_at": case.opened_at,
        "decided_by": case.decided_by.get_username() if case.decided_by else None,
        "decided_at": case.decided_at,
    }


def _decision_chain(case: ReviewCase | None) -> list[dict[str, Any]]:
    if case is None:
        return []
    return [
        {
            "at": event.created_at,
            "kind": event.kind,
            "description": event.get_kind_display(),
            "actor": event.actor.get_username() if event.actor else None,
            "note": event.note,
        }
        for event in review_case_events(case=case)
    ]


def _image(name: str | None) -> dict[str, Any] | None:
    if not name or not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as stored:
        data = stored.read()
    return {
        "media_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "sha256": hashlib.sha256(data).hexdigest(),
        "base64": base64.b64encode(data).decode("ascii"),
    }


def _file_sha256(name: str | None) -> str | None:
    if not name or not default_storage.exists(name):
        return None
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as stored:
        for block in iter(lambda: stored.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- The shape, for the API's answer and its schema --------------------------------------------


class ImageSerializer(serializers.Serializer[Any]):
    media_type = serializers.CharField()
    sha256 = serializers.CharField()
    base64 = serializers.CharField(help_text="The file's bytes, base64-encoded.")


class EvidenceSubmissionSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    original_filename = serializers.CharField()
    uploader = serializers.CharField()
    uploaded_at = serializers.DateTimeField()
    analysed_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=Submission.Status.choices)
    verdict = serializers.ChoiceField(choices=Submission.Verdict.choices, allow_null=True)
    fake_probability = serializers.FloatField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)


class EvidenceFileSerializer(serializers.Serializer[Any]):
    upload_sha256 = serializers.CharField(help_text="sha256 of the bytes as uploaded.")
    stored_sha256 = serializers.CharField(
        allow_null=True, help_text="sha256 of the stored, re-encoded file the model analysed."
    )
    byte_size = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    format = serializers.CharField()
    pdq = serializers.CharField(allow_null=True, help_text="PDQ perceptual hash (hex).")
    pdq_quality = serializers.IntegerField(allow_null=True)


class ThresholdsSerializer(serializers.Serializer[Any]):
    fake = serializers.FloatField(allow_null=True, help_text="P(fake) at or above: `fake`.")
    uncertain = serializers.FloatField(
        allow_null=True, help_text="P(fake) at or above (below `fake`): `uncertain`."
    )
    set_by = serializers.CharField(allow_null=True, help_text="Model card or configuration.")
    selection = serializers.CharField(allow_null=True, help_text="How they were chosen.")


class CalibrationSerializer(serializers.Serializer[Any]):
    temperature = serializers.FloatField(allow_null=True)
    bias = serializers.FloatField(
        allow_null=True, help_text="P(fake) = sigmoid(logit / temperature + bias)."
    )
    method = serializers.CharField(allow_null=True)


class EvidenceModelSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(allow_null=True)
    version = serializers.CharField(allow_null=True)
    checkpoint_sha256 = serializers.CharField(allow_null=True)
    trained = serializers.BooleanField(allow_null=True)
    input_size = serializers.IntegerField(allow_null=True)
    mirror_average = serializers.BooleanField(
        allow_null=True,
        help_text="Whether each face's score averaged its own logit and its mirror image's.",
    )
    thresholds = ThresholdsSerializer()
    calibration = CalibrationSerializer()
    quality_thresholds = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="The limits below which a face was too poor to judge.",
    )


class EvidenceFaceSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    box = serializers.ListField(child=serializers.FloatField(), help_text="x1, y1, x2, y2")
    detection_probability = serializers.FloatField()
    fake_probability = serializers.FloatField()
    real_probability = serializers.FloatField()
    size_px = serializers.IntegerField()
    sharpness = serializers.FloatField()
    yaw = serializers.FloatField()
    quality = serializers.ChoiceField(choices=Face.Quality.choices)
    quality_reasons = serializers.ListField(child=serializers.CharField())
    crop = ImageSerializer(allow_null=True)
    heatmap = ImageSerializer(allow_null=True)


class EvidenceInheritedFromSerializer(serializers.Serializer[Any]):
    submission_id = serializers.UUIDField(help_text="The near-copy a moderator decided.")
    case_id = serializers.UUIDField()
    pdq_distance = serializers.IntegerField(help_text="Differing bits of the 256 PDQ bits.")


class EvidenceModerationSerializer(serializers.Serializer[Any]):
    inherited_from = EvidenceInheritedFromSerializer(
        allow_null=True,
        help_text="Set when the outcome was inherited from a decided near-copy: the case, "
        "state and decision chain are then that near-copy's.",
    )
    case_id = serializers.UUIDField()
    state = serializers.ChoiceField(choices=ReviewCase.State.choices)
    state_label = serializers.CharField()
    outcome = serializers.CharField(help_text="As the uploader sees it.")
    model_verdict_at_review = serializers.ChoiceField(choices=Submission.Verdict.choices)
    opened_at = serializers.DateTimeField()
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)


class EvidenceEventSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    description = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    note = serializers.CharField(allow_blank=True)


class EvidenceSerializer(serializers.Serializer[Any]):
    format = serializers.IntegerField(help_text="The layout's version.")
    generated_at = serializers.DateTimeField()
    generated_by = serializers.CharField()
    site = serializers.CharField()
    submission = EvidenceSubmissionSerializer()
    file = EvidenceFileSerializer()
    provenance = serializers.DictField(
        allow_null=True, help_text="What the file said about itself (EXIF, XMP, C2PA)."
    )
    model = EvidenceModelSerializer()
    faces = EvidenceFaceSerializer(many=True)
    overlay = ImageSerializer(allow_null=True)
    moderation = EvidenceModerationSerializer(allow_null=True)
    decision_chain = EvidenceEventSerializer(many=True)
