"""The JSON API: upload photos and videos, read their analysis. Errors are {"code", "detail"}."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import (
    APIException,
    NotFound,
    UnsupportedMediaType,
    ValidationError,
)
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from deepfake_site.api import refuse_empty_parameters
from detection import selectors
from detection.forms import SubmissionFilterForm
from detection.ml.card import NETWORKS, GroupVerdicts
from detection.ml.quality import QualityReason
from detection.models import Face, Submission, Track
from detection.upload_gate import FileOutcome, UploadRefused, uploads_accept
from moderation.evidence import CalibrationSerializer
from moderation.rules import user_is_reviewer
from moderation.selectors import near_copies_of, submission_outcome

_CAUTION_HELP = (
    "Where the model card measures the model as weak on data unlike its training data: a short "
    "notice to show beside every score."
)


class UploadRefusedError(APIException):
    """An upload gate refusal as an API error: its status, code and message."""

    def __init__(self, refusal: UploadRefused) -> None:
        super().__init__(detail=refusal.message, code=refusal.code.value)
        self.status_code = refusal.status
        # DRF's handler turns `wait` into the Retry-After header.
        self.wait = refusal.retry_after


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as {"code": "...", "detail": "..."} (plus "fields" for form errors)."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        response.data = {
            "code": "invalid",
            "detail": "The request is invalid.",
            "fields": exc.detail,
        }
        return response
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
    elif isinstance(exc, Http404):
        code = "not_found"
    elif isinstance(exc, PermissionDenied):
        code = "permission_denied"
    else:
        code = "error"
    detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    response.data = {"code": code, "detail": str(detail)}
    return response


class FaceSerializer(serializers.ModelSerializer[Face]):
    box = serializers.ListField(child=serializers.FloatField(), read_only=True)
    real_probability = serializers.FloatField(read_only=True)
    quality_reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=[reason.value for reason in QualityReason]),
        read_only=True,
        help_text="Why the face is too poor to judge (empty when `quality` is `ok`).",
    )
    heatmap_url = serializers.SerializerMethodField()
    crop_url = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = (
            "index",
            "box",
            "detection_probability",
            "fake_probability",
            "real_probability",
            "size_px",
            "quality",
            "quality_reasons",
            "heatmap_url",
            "crop_url",
        )

    def get_heatmap_url(self, face: Face) -> str:
        return self._absolute("detection:face-heatmap", face)

    def get_crop_url(self, face: Face) -> str:
        return self._absolute("detection:face-crop", face)

    def _absolute(self, url_name: str, face: Face) -> str:
        path = reverse(url_name, kwargs={"submission_id": face.submission_id, "index": face.index})
        return self.context["request"].build_absolute_uri(path)


_PROVENANCE_SCHEMA = {
    "type": "object",
    "description": (
        "What the uploaded file said about itself, read before its metadata was removed "
        "(anyone can write metadata: it is the file's claim). `exif`: camera_make, "
        "camera_model, software, captured_at, gps_present (never the position); `xmp`: "
        "creator_tool, history [{action, software, when, changed}], digital_source_type, "
        "ai_generated; `c2pa`: validation_state (valid, trusted or invalid), "
        "validation_codes, claim_generator, title, signed_by, signed_at, actions [{action, "
        "software, digital_source_type}], ai_generated, ai_assertions; each null when the "
        "file had none. `unreadable`: the parts present but unreadable. Empty for photos "
        "uploaded before metadata was read."
    ),
}


class TrackSerializer(serializers.ModelSerializer[Track]):
    timeline = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        read_only=True,
        help_text="[seconds, P(fake)] for every sampled frame the person appears in.",
    )
    fake_probability = serializers.FloatField(
        read_only=True,
        help_text="The mean of the most suspicious half of the frames that count (the good "
        "ones when `judged`).",
    )
    judged = serializers.BooleanField(
        read_only=True,
        help_text="Seen well enough on enough frames to count towards the verdict.",
    )
    crop_url = serializers.SerializerMethodField()
    heatmap_url = serializers.SerializerMethodField()

    class Meta:
        model = Track
        fields = (
            "index",
            "frames",
            "good_frames",
            "judged",
            "fake_probability",
            "timeline",
            "first_s",
            "last_s",
            "worst_frame_s",
            "crop_url",
            "heatmap_url",
        )

    def get_crop_url(self, track: Track) -> str:
        return self._absolute("detection:face-crop", track)

    def get_heatmap_url(self, track: Track) -> str:
        return self._absolute("detection:face-heatmap", track)

    def _absolute(self, url_name: str, track: Track) -> str:
        # The track's most suspicious face shares its index.
        path = reverse(
            url_name, kwargs={"submission_id": track.submission_id, "index": track.index}
        )
        return self.context["request"].build_absolute_uri(path)


class SubmissionSerializer(serializers.ModelSerializer[Submission]):
    url = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField()
    faces = serializers.SerializerMethodField()
    tracks = serializers.SerializerMethodField()
    overlay_url = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    moderation = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    pdq = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="PDQ perceptual hash of the image, 64 hex digits (null for photos uploaded "
        "before hashing began).",
    )
    pdq_quality = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="How much detail the PDQ hash saw, 0-100."
    )
    provenance = serializers.SerializerMethodField()
    matches = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = (
            "id",
            "url",
            "media_type",
            "status",
            "verdict",
            "fake_probability",
            "failure_reason",
            "original_filename",
            "sha256",
            "pdq",
            "pdq_quality",
            "byte_size",
            "width",
            "height",
            "format",
            "duration_s",
            "frames_analysed",
            "frames_total",
            "attempts",
            "queued_at",
            "started_at",
            "finished_at",
            "queue_position",
            "timings_ms",
            "model",
            "overlay_url",
            "video_url",
            "poster_url",
            "faces",
            "tracks",
            "moderation",
            "provenance",
            "matches",
        )
        extra_kwargs = {
            "duration_s": {"help_text": "A video's length in seconds; null for a photo."},
            "frames_analysed": {
                "help_text": "A video's sampled frames analysed so far (all of them once "
                "final); null for a photo."
            },
            "frames_total": {"help_text": "A video's sampled frames to analyse; null for a photo."},
        }

    def get_url(self, submission: Submission) -> str:
        path = reverse("api:submission-detail", kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)

    @extend_schema_field(
        serializers.ChoiceField(
            choices=Submission.Verdict.choices,
            allow_null=True,
            help_text="Null until the analysis has a verdict (and for no face or a failure).",
        )
    )
    def get_verdict(self, submission: Submission) -> str | None:
        return submission.verdict or None

    @extend_schema_field(FaceSerializer(many=True))
    def get_faces(self, submission: Submission) -> list[dict[str, Any]]:
        if not submission.is_final:
            return []
        return list(FaceSerializer(submission.faces.all(), many=True, context=self.context).data)

    @extend_schema_field(TrackSerializer(many=True))
    def get_tracks(self, submission: Submission) -> list[dict[str, Any]]:
        """A video's people, one track each; empty for a photo."""
        if not submission.is_final or not submission.is_video:
            return []
        return list(TrackSerializer(submission.tracks.all(), many=True, context=self.context).data)

    def get_overlay_url(self, submission: Submission) -> str | None:
        if not submission.overlay:
            return None
        return self._media_url("detection:submission-overlay", submission)

    def get_video_url(self, submission: Submission) -> str | None:
        """The stored clip (byte ranges supported); null for a photo."""
        return (
            self._media_url("detection:submission-video", submission)
            if submission.is_video
            else None
        )

    def get_poster_url(self, submission: Submission) -> str | None:
        return (
            self._media_url("detection:submission-poster", submission)
            if submission.poster
            else None
        )

    def _media_url(self, url_name: str, submission: Submission) -> str:
        path = reverse(url_name, kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)

    @extend_schema_field(
        inline_serializer(
            "ModelInfo",
            {
                "version": serializers.CharField(),
                "trained": serializers.BooleanField(allow_null=True),
                "warning": serializers.CharField(allow_null=True),
                "caution": serializers.CharField(allow_null=True, help_text=_CAUTION_HELP),
                "flag_threshold": serializers.FloatField(allow_null=True),
                "uncertain_threshold": serializers.FloatField(allow_null=True),
            },
            allow_null=True,
        )
    )
    def get_model(self, submission: Submission) -> dict[str, Any] | None:
        if not submission.model_version:
            return None
        return {
            "version": submission.model_version,
            "trained": submission.model_trained,
            "caution": selectors.model_caution(),
            "flag_threshold": submission.flag_threshold,
            "uncertain_threshold": submission.uncertain_threshold,
            "warning": (
                None
                if submission.model_trained
                else "Scored by an untrained demonstration model: the probabilities mean nothing."
            ),
        }

    @extend_schema_field(
        inline_serializer(
            "ModerationOutcome",
            {
                "state": serializers.ChoiceField(
                    choices=["pending_review", "confirmed_manipulated", "cleared"]
                ),
                "label": serializers.CharField(),
                "decided_at": serializers.DateTimeField(allow_null=True),
                "inherited": serializers.BooleanField(
                    help_text="The outcome is that of a near-identical image a moderator "
                    "decided, not of a review of this upload."
                ),
                "inherited_from": inline_serializer(
                    "InheritedFrom",
                    {
                        "case": serializers.UUIDField(),
                        "case_url": serializers.URLField(),
                        "submission": serializers.UUIDField(),
                        "distance": serializers.IntegerField(),
                    },
                    allow_null=True,
                    help_text="Moderators only (null for others): the decided case.",
                ),
            },
            allow_null=True,
        )
    )
    def get_moderation(self, submission: Submission) -> dict[str, Any] | None:
        outcome = submission_outcome(submission=submission)
        if outcome is None:
            return None
        decided_at = outcome.decided_at
        inherited = outcome.inherited_from
        return {
            "state": outcome.state,
            "label": outcome.label,
            "decided_at": decided_at.isoformat() if decided_at else None,
            "inherited": inherited is not None,
            "inherited_from": (
                {
                    "case": inherited.source_case_id,
                    "case_url": self._absolute(
                        "moderation:case-detail", case_id=inherited.source_case_id
                    ),
                    "submission": inherited.source_case.submission_id,
                    "distance": inherited.distance,
                }
                if inherited is not None and self._for_reviewer()
                else None
            ),
        }

    @extend_schema_field(_PROVENANCE_SCHEMA)
    def get_provenance(self, submission: Submission) -> dict[str, Any]:
        return dict(submission.provenance)

    @extend_schema_field(
        inline_serializer(
            "NearCopy",
            {
                "kind": serializers.ChoiceField(choices=["submission", "bank"]),
                "distance": serializers.IntegerField(help_text="PDQ bits that differ."),
                "submission": serializers.UUIDField(required=False),
                "url": serializers.URLField(required=False),
                "outcome": serializers.CharField(required=False, allow_null=True),
                "bank": serializers.CharField(required=False),
                "bank_kind": serializers.ChoiceField(
                    choices=["known_manipulated", "known_authentic"], required=False
                ),
                "label": serializers.CharField(required=False),
            },
            many=True,
            allow_null=True,
            help_text="Moderators only (null for others): other submissions and hash bank "
            "entries whose PDQ hash is within the match distance, nearest first.",
        )
    )
    def get_matches(self, submission: Submission) -> list[dict[str, Any]] | None:
        if not self._for_reviewer():
            return None
        rows = []
        copies = near_copies_of(
            submission=submission,
            found=submission.image_matches.all(),
            found_by=submission.matched_by.all(),
        )
        for copy in copies:
            if copy.submission is not None:
                rows.append(
                    {
                        "kind": "submission",
                        "distance": copy.distance,
                        "submission": copy.submission.pk,
                        "url": self._absolute(
                            "api:submission-detail", submission_id=copy.submission.pk
                        ),
                        "outcome": copy.outcome.state if copy.outcome else None,
                    }
                )
            elif copy.bank_entry is not None:
                rows.append(
                    {
                        "kind": "bank",
                        "distance": copy.distance,
                        "bank": copy.bank_entry.bank.name,
                        "bank_kind": copy.bank_entry.bank.kind,
                        "label": copy.bank_entry.label,
                    }
                )
        return rows

    def _for_reviewer(self) -> bool:
        # Django caches the user's permissions after the first check: one query per response.
        return user_is_reviewer(user=self.context["request"].user)

    def _absolute(self, url_name: str, **kwargs: Any) -> str:
        return self.context["request"].build_absolute_uri(reverse(url_name, kwargs=kwargs))

    def get_queue_position(self, submission: Submission) -> int | None:
        # Annotated by selectors.submissions_with_results; None unless queued.
        return submission.queued_before  # type: ignore[attr-defined]


class BatchItemSerializer(serializers.Serializer[FileOutcome]):
    """What became of one photo of a request that carried several."""

    filename = serializers.CharField(help_text="The name the file was sent with.")
    outcome = serializers.ChoiceField(
        choices=["accepted", "requeued", "duplicate", "rejected"],
        help_text="`accepted`: stored and queued; `requeued`: the same photo failed before "
        "and is analysed again; `duplicate`: you had sent these exact bytes; `rejected`: "
        "not stored, see `code`.",
    )
    status = serializers.IntegerField(help_text="The HTTP status this photo alone would get.")
    id = serializers.UUIDField(allow_null=True)
    url = serializers.URLField(allow_null=True)
    code = serializers.CharField(allow_null=True, help_text="Why it was rejected.")
    detail = serializers.CharField(allow_null=True)
    retry_after = serializers.IntegerField(
        allow_null=True, help_text="Seconds to wait before sending it again, when that helps."
    )


BatchSerializer = inline_serializer("BatchUpload", {"results": BatchItemSerializer(many=True)})

_UPLOAD_REQUEST = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "image": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
                "maxItems": 10,
                "description": "One or more files, each its own `image` part: JPEG, PNG or "
                "WebP photos, MP4 (H.264), WebM (VP8, VP9) or MOV (H.264) videos; at most "
                "UPLOAD_MAX_FILES (10 by default) in one request.",
            },
            "video": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "Videos may come as `video` parts instead; they count "
                "towards the same limit.",
            },
        },
    }
}


class SubmissionListCreate(generics.ListCreateAPIView[Submission]):
    """List the caller's submissions, or upload photos and videos (multipart parts `image`;
    a video may come as `video`)."""

    serializer_class = SubmissionSerializer
    parser_classes = [MultiPartParser]
    error_statuses = (411, 413, 429, 503)

    def get_queryset(self) -> Any:
        refuse_empty_parameters(self.request, "status", "verdict")
        # The web page's filter form: the same choices, the same errors.
        filters = SubmissionFilterForm(self.request.query_params)
        if not filters.is_valid():
            raise ValidationError(
                {name: [str(e) for e in errors] for name, errors in filters.errors.items()}
            )
        return selectors.submissions_with_results(
            selectors.submission_list_for_user(
                user=self.request.user,  # type: ignore[arg-type]
                status=filters.cleaned_data["status"],
                verdict=filters.cleaned_data["verdict"],
            ),
            with_near_copies=user_is_reviewer(user=self.request.user),
        )

    @extend_schema(
        summary="List your submissions",
        description="Your own uploads, newest first, each with its analysis and moderation "
        "outcome; narrow them by `status` and `verdict`.",
        parameters=[
            OpenApiParameter("status", enum=Submission.Status.values, required=False),
            OpenApiParameter("verdict", enum=Submission.Verdict.values, required=False),
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Upload photos and videos for analysis",
        description="Send one file, or several, as `image` parts of a multipart body (a "
        "video may come as a `video` part). One file: 202 with its new submission (queued; "
        "poll its `url` or register a webhook), or 200 with the existing one when you had "
        "sent these exact bytes before. Several: 207 with one result per file, in the order "
        "sent; each passes the same checks and rate limits as a single upload.",
        request=_UPLOAD_REQUEST,
        responses={
            202: OpenApiResponse(SubmissionSerializer, "Accepted and queued for analysis."),
            200: OpenApiResponse(SubmissionSerializer, "You had sent these exact bytes before."),
            207: OpenApiResponse(
                BatchSerializer,
                "Several photos: what became of each.",
                examples=[
                    OpenApiExample(
                        "Two photos, one too large",
                        value={
                            "results": [
                                {
                                    "filename": "beach.jpg",
                                    "outcome": "accepted",
                                    "status": 202,
                                    "id": "5f0c5a8e-3b7d-4c1e-9a51-0d7f3c2b9e41",
                                    "url": "https://faceproof.example/api/v1/submissions/"
                                    "5f0c5a8e-3b7d-4c1e-9a51-0d7f3c2b9e41/",
                                    "code": None,
                                    "detail": None,
                                    "retry_after": None,
                                },
                                {
                                    "filename": "scan.png",
                                    "outcome": "rejected",
                                    "status": 413,
                                    "id": None,
                                    "url": None,
                                    "code": "file_too_large",
                                    "detail": "The file is larger than the 20 MB limit.",
                                    "retry_after": None,
                                },
                            ]
                        },
                    )
                ],
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The gate reads the multipart body itself; anything else is refused before it.
        if not request.content_type.startswith("multipart/form-data"):
            raise UnsupportedMediaType(request.content_type)
        try:
            outcomes = uploads_accept(request._request, user=request.user)  # type: ignore[arg-type]
        except UploadRefused as refusal:
            raise UploadRefusedError(refusal) from None
        if len(outcomes) > 1:
            results = [self._batch_item(outcome) for outcome in outcomes]
            return Response({"results": results}, status=status.HTTP_207_MULTI_STATUS)
        outcome = outcomes[0]
        if outcome.refusal is not None:
            raise UploadRefusedError(outcome.refusal)
        assert outcome.accepted is not None
        serializer = self.get_serializer(self._with_results(outcome.accepted.submission))
        return Response(
            serializer.data,
            status=_accepted_status(outcome),
            headers={"Location": serializer.data["url"]},
        )

    def _with_results(self, submission: Submission) -> Submission:
        return selectors.submissions_with_results(
            Submission.objects.filter(id=submission.id),
            with_near_copies=user_is_reviewer(user=self.request.user),
        ).get()

    def _batch_item(self, outcome: FileOutcome) -> dict[str, Any]:
        item: dict[str, Any] = {
            "filename": outcome.filename,
            "id": None,
            "url": None,
            "code": None,
            "detail": None,
            "retry_after": None,
        }
        if outcome.refusal is not None:
            return {
                **item,
                "outcome": "rejected",
                "status": outcome.refusal.status,
                "code": outcome.refusal.code.value,
                "detail": outcome.refusal.message,
                "retry_after": outcome.refusal.retry_after,
            }
        assert outcome.accepted is not None
        submission_id = outcome.accepted.submission.id
        path = reverse("api:submission-detail", kwargs={"submission_id": submission_id})
        kind = (
            "accepted"
            if outcome.accepted.created
            else "requeued"
            if outcome.accepted.requeued
            else "duplicate"
        )
        return {
            **item,
            "outcome": kind,
            "status": _accepted_status(outcome),
            "id": str(submission_id),
            "url": self.request.build_absolute_uri(path),
        }


def _accepted_status(outcome: FileOutcome) -> int:
    assert outcome.accepted is not None
    created_or_requeued = outcome.accepted.created or outcome.accepted.requeued
    return status.HTTP_202_ACCEPTED if created_or_requeued else status.HTTP_200_OK


@extend_schema(
    summary="Read one submission",
    description="Its status, verdict, per-face results (box, scores, quality, crop and "
    "heatmap links) and moderation outcome. Uploaders see their own; moderators and staff "
    "see every submission.",
)
class SubmissionRetrieve(generics.RetrieveAPIView[Submission]):
    serializer_class = SubmissionSerializer

    def get_object(self) -> Submission:
        visible = selectors.submissions_visible_to(user=self.request.user)
        submission = (
            selectors.submissions_with_results(
                visible, with_near_copies=user_is_reviewer(user=self.request.user)
            )
            .filter(id=self.kwargs["submission_id"])
            .first()
        )
        if submission is None:
            raise Http404
        return submission


class GroupVerdictsSerializer(serializers.Serializer[GroupVerdicts]):
    attribute = serializers.CharField(
        help_text="What the groups are formed by: age, gender, ethnicity."
    )
    group = serializers.CharField(help_text='e.g. "65 and over", as the data set annotates it.')
    count = serializers.IntegerField()
    judged_fake = serializers.IntegerField(help_text="Photos at or above the fake threshold.")
    judged_uncertain = serializers.IntegerField(
        help_text="Photos at or above the uncertain threshold (uncertain or worse)."
    )
    mean_probability = serializers.FloatField(help_text="Mean calibrated P(fake).")


class EvaluationSerializer(serializers.Serializer[dict[str, Any]]):
    """One of the card's evaluations (`Evaluation`), with its key."""

    key = serializers.CharField(help_text="e.g. dfdc_validation, utkface_photos, sample_frames.")
    title = serializers.CharField()
    in_domain = serializers.BooleanField(
        help_text="False where the set differs in kind from the training data."
    )
    metrics = serializers.DictField(
        help_text="auc (with auc_low and auc_high, its 95 % interval), tpr_at_1_fpr, "
        "tpr_at_5_fpr, ece, brier, count; for real photos flagged_fake and flagged_uncertain."
    )
    note = serializers.CharField(help_text="How it was measured.")
    by_group = GroupVerdictsSerializer(
        many=True, help_text="The same check by whom the faces show (real photos only)."
    )


class ModelCardSerializer(serializers.Serializer[selectors.RunningModel]):
    name = serializers.CharField(source="card.name")
    version = serializers.CharField(
        allow_null=True, help_text="First digits of the checkpoint's sha256, as on every result."
    )
    installed = serializers.BooleanField()
    trained = serializers.BooleanField(
        source="card.trained", help_text="False: its scores mean nothing."
    )
    card_problem = serializers.CharField(
        allow_null=True, help_text="Why the model card could not be read, if it could not."
    )
    network = serializers.ChoiceField(
        choices=NETWORKS,
        source="card.network",
        help_text="inception_resnet_v1 (facenet-pytorch) or face_resnet (dlib's face network).",
    )
    input_size = serializers.IntegerField(source="card.input_size")
    crop_top_cut = serializers.FloatField(
        source="card.crop_top_cut",
        help_text="Share of each face box's height the model leaves out at the top (0: none).",
    )
    flag_threshold = serializers.FloatField(help_text="P(fake) at or above this: fake.")
    uncertain_threshold = serializers.FloatField(help_text="P(fake) at or above this: uncertain.")
    threshold_selection = serializers.CharField(
        source="card.thresholds.selection", default="", help_text="How they were chosen."
    )
    calibration = CalibrationSerializer(source="card.calibration")
    mirror_average = serializers.BooleanField(
        source="card.mirror_average", help_text="Each face is scored with its mirror image."
    )
    caution = serializers.CharField(source="card.caution", allow_null=True, help_text=_CAUTION_HELP)
    summary = serializers.ListField(
        child=serializers.CharField(),
        source="card.summary",
        help_text="What it catches and misses, in words for moderators.",
    )
    limitations = serializers.ListField(child=serializers.CharField(), source="card.limitations")
    training_data = serializers.SerializerMethodField()
    evaluations = serializers.SerializerMethodField()

    @extend_schema_field(
        inline_serializer(
            "TrainingData",
            {
                "dataset": serializers.CharField(),
                "licence": serializers.CharField(),
                "pretrained": serializers.CharField(
                    help_text="The weights training started from, if not random ('' if so)."
                ),
            },
        )
    )
    def get_training_data(self, model: selectors.RunningModel) -> dict[str, str]:
        data = model.card.training_data
        return {key: str(data.get(key, "")) for key in ("dataset", "licence", "pretrained")}

    @extend_schema_field(EvaluationSerializer(many=True))
    def get_evaluations(self, model: selectors.RunningModel) -> list[dict[str, Any]]:
        return [
            EvaluationSerializer({"key": key, **dataclasses.asdict(evaluation)}).data
            for key, evaluation in model.card.evaluations.items()
        ]


@extend_schema(
    summary="Read the running model's card",
    description="The model that scores every upload: its version, thresholds, calibration, "
    "what it catches and misses, and every measurement behind them, also by group of people. "
    "The same facts as the model card page.",
    responses=ModelCardSerializer,
    tags=["Model"],
)
@api_view(["GET"])
def model_card(request: Request) -> Response:
    return Response(ModelCardSerializer(selectors.running_model()).data)


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([AllowAny])
def not_found(request: Request) -> Response:
    """Unknown API paths and malformed ids: a 404 in the {code, detail} format."""
    raise NotFound("No such API endpoint or object.")
