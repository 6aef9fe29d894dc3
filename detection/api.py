"""The JSON API: upload a photo, read its analysis. Errors are {"code", "detail"}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from detection import selectors
from detection.forms import SubmissionFilterForm
from detection.ml.quality import QualityReason
from detection.models import Face, Submission
from detection.upload_gate import UploadRefused, upload_accept
from moderation.rules import user_is_reviewer
from moderation.selectors import near_copies_of, submission_outcome


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


class SubmissionSerializer(serializers.ModelSerializer[Submission]):
    url = serializers.SerializerMethodField()
    faces = serializers.SerializerMethodField()
    overlay_url = serializers.SerializerMethodField()
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
            "attempts",
            "queued_at",
            "started_at",
            "finished_at",
            "queue_position",
            "timings_ms",
            "model",
            "overlay_url",
            "faces",
            "moderation",
            "provenance",
            "matches",
        )

    def get_url(self, submission: Submission) -> str:
        path = reverse("api:submission-detail", kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)

    @extend_schema_field(FaceSerializer(many=True))
    def get_faces(self, submission: Submission) -> list[dict[str, Any]]:
        if not submission.is_final:
            return []
        return list(FaceSerializer(submission.faces.all(), many=True, context=self.context).data)

    def get_overlay_url(self, submission: Submission) -> str | None:
        if not submission.overlay:
            return None
        path = reverse("detection:submission-overlay", kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)

    @extend_schema_field(
        inline_serializer(
            "ModelInfo",
            {
                "version": serializers.CharField(),
                "trained": serializers.BooleanField(allow_null=True),
                "warning": serializers.CharField(allow_null=True),
                "caution": serializers.CharField(
                    allow_null=True,
                    help_text="Where the model card measures the model as weak on data unlike "
                    "its training data: a short notice to show beside every score.",
                ),
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


class SubmissionListCreate(generics.ListCreateAPIView[Submission]):
    """List the caller's submissions, or upload a photo (multipart field `image`)."""

    serializer_class = SubmissionSerializer
    parser_classes = [MultiPartParser]

    def get_queryset(self) -> Any:
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
        parameters=[
            OpenApiParameter("status", enum=Submission.Status.values, required=False),
            OpenApiParameter("verdict", enum=Submission.Verdict.values, required=False),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
                "required": ["image"],
            }
        },
        responses={202: SubmissionSerializer, 200: SubmissionSerializer},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            outcome = upload_accept(request._request, user=request.user)  # type: ignore[arg-type]
        except UploadRefused as refusal:
            raise UploadRefusedError(refusal) from None
        submission = selectors.submissions_with_results(
            Submission.objects.filter(id=outcome.submission.id),
            with_near_copies=user_is_reviewer(user=request.user),
        ).get()
        serializer = self.get_serializer(submission)
        return Response(
            serializer.data,
            status=(
                status.HTTP_202_ACCEPTED
                if outcome.created or outcome.requeued
                else status.HTTP_200_OK
            ),
            headers={"Location": serializer.data["url"]},
        )


class SubmissionRetrieve(generics.RetrieveAPIView[Submission]):
    """One submission: its status, verdict, per-face results and moderation outcome."""

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


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([AllowAny])
def not_found(request: Request) -> Response:
    """Unknown API paths and malformed ids: a 404 in the {code, detail} format."""
    raise NotFound("No such API endpoint or object.")
