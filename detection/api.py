"""The JSON API: upload a photo or a video, read its analysis. Errors are {"code", "detail"}."""

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
from detection.models import Face, Submission, Track
from detection.upload_gate import UploadRefused, upload_accept
from moderation.selectors import submission_outcome


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
    faces = serializers.SerializerMethodField()
    tracks = serializers.SerializerMethodField()
    overlay_url = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    moderation = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()

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
            },
            allow_null=True,
        )
    )
    def get_moderation(self, submission: Submission) -> dict[str, Any] | None:
        outcome = submission_outcome(submission=submission)
        if outcome is None:
            return None
        decided_at = outcome.decided_at
        return {
            "state": outcome.state,
            "label": outcome.label,
            "decided_at": decided_at.isoformat() if decided_at else None,
        }

    def get_queue_position(self, submission: Submission) -> int | None:
        # Annotated by selectors.submissions_with_results; None unless queued.
        return submission.queued_before  # type: ignore[attr-defined]


class SubmissionListCreate(generics.ListCreateAPIView[Submission]):
    """List the caller's submissions, or upload a photo or a video (multipart field `image`;
    a video may come as `video`)."""

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
            )
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
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "binary",
                        "description": "A JPEG, PNG or WebP photo, or an MP4 (H.264), WebM "
                        "(VP8, VP9) or MOV (H.264) video.",
                    },
                    "video": {
                        "type": "string",
                        "format": "binary",
                        "description": "A video may come in this field instead.",
                    },
                },
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
            Submission.objects.filter(id=outcome.submission.id)
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
            selectors.submissions_with_results(visible)
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
