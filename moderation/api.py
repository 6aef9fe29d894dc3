"""The moderation API: the review queue, claims, decisions and evidence, for moderators and
staff with an API token.

The same services and rules as the moderator pages: a refusal here is the refusal the case
page shows (own uploads, notes, leases, escalations), answered as 409 (or 400 for a missing
note) in the API's {code, detail} format.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError as InvalidInput
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deepfake_site.api import Conflict, StrictCharField, refuse_empty_parameters
from detection import selectors as detection_selectors
from detection.api import SubmissionSerializer
from detection.models import Submission
from moderation import rules, selectors, services
from moderation.evidence import EvidenceSerializer, evidence_build
from moderation.evidence_pdf import evidence_pdf
from moderation.forms import QueueFilterForm
from moderation.models import Decision, ReviewCase, ReviewEvent


class IsReviewer(BasePermission):
    message = "Only moderators and staff work the review queue."

    def has_permission(self, request: Request, view: Any) -> bool:
        return rules.user_is_reviewer(user=request.user)


REVIEWERS = [IsAuthenticated, IsReviewer]


class CaseSubmissionSerializer(serializers.ModelSerializer[Submission]):
    url = serializers.SerializerMethodField()
    uploader = serializers.CharField(source="uploader.username")
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = ("id", "url", "original_filename", "uploader", "queued_at", "thumbnail_url")

    def get_url(self, submission: Submission) -> str:
        path = reverse("api:submission-detail", kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)

    def get_thumbnail_url(self, submission: Submission) -> str:
        path = reverse("detection:submission-thumbnail", kwargs={"submission_id": submission.id})
        return self.context["request"].build_absolute_uri(path)


class CaseSerializer(serializers.ModelSerializer[ReviewCase]):
    url = serializers.SerializerMethodField()
    submission = CaseSubmissionSerializer()
    claimed_by = serializers.SerializerMethodField()
    lease_expires_at = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()

    class Meta:
        model = ReviewCase
        fields: tuple[str, ...] = (
            "id",
            "url",
            "state",
            "priority",
            "verdict",
            "fake_probability",
            "face_count",
            "opened_at",
            "claimed_by",
            "lease_expires_at",
            "decided_by",
            "decided_at",
            "submission",
        )
        extra_kwargs = {
            "verdict": {"help_text": "The model's verdict the case was opened (or refreshed) on."},
            "fake_probability": {"help_text": "P(fake) of the most suspicious judged face."},
        }

    def get_url(self, case: ReviewCase) -> str:
        path = reverse("api:case-detail", kwargs={"case_id": case.pk})
        return self.context["request"].build_absolute_uri(path)

    def get_claimed_by(self, case: ReviewCase) -> str | None:
        """Who holds the case now (null when nobody's lease is running)."""
        if not case.lease_active() or case.claimed_by is None:
            return None
        return case.claimed_by.get_username()

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_lease_expires_at(self, case: ReviewCase) -> str | None:
        if not case.lease_active() or case.lease_expires_at is None:
            return None
        return serializers.DateTimeField().to_representation(case.lease_expires_at)

    def get_decided_by(self, case: ReviewCase) -> str | None:
        return case.decided_by.get_username() if case.decided_by else None


class EventSerializer(serializers.ModelSerializer[ReviewEvent]):
    actor = serializers.SerializerMethodField()
    description = serializers.CharField(source="get_kind_display")

    class Meta:
        model = ReviewEvent
        fields = ("kind", "description", "actor", "note", "created_at")

    def get_actor(self, event: ReviewEvent) -> str | None:
        """The moderator who acted (null for the system, which opens cases)."""
        return event.actor.get_username() if event.actor else None


class ActionSerializer(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=Decision.choices)
    allowed = serializers.BooleanField()
    refusal = serializers.CharField(
        allow_null=True, help_text="Why you cannot take this decision now (null if you can)."
    )
    note_required = serializers.BooleanField()


class CaseDetailSerializer(CaseSerializer):
    analysis = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    evidence_url = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields: tuple[str, ...] = (
            *CaseSerializer.Meta.fields,
            "analysis",
            "history",
            "actions",
            "evidence_url",
        )

    @extend_schema_field(SubmissionSerializer)
    def get_analysis(self, case: ReviewCase) -> dict[str, Any]:
        """The submission as its uploader's API shows it: faces, scores, heatmap links."""
        submission = detection_selectors.submissions_with_results(
            Submission.objects.filter(id=case.submission_id)
        ).get()
        return dict(SubmissionSerializer(submission, context=self.context).data)

    @extend_schema_field(EventSerializer(many=True))
    def get_history(self, case: ReviewCase) -> list[dict[str, Any]]:
        events = selectors.review_case_events(case=case)
        return list(EventSerializer(events, many=True).data)

    @extend_schema_field(ActionSerializer(many=True))
    def get_actions(self, case: ReviewCase) -> list[dict[str, Any]]:
        """The decisions as the case page offers them to you: the same rules."""
        user = self.context["request"].user
        now = timezone.now()
        actions = []
        for decision in Decision:
            refusal = rules.review_case_refusal(case=case, user=user, decision=decision, now=now)
            actions.append(
                {
                    "decision": decision.value,
                    "allowed": refusal is None,
                    "refusal": refusal,
                    "note_required": rules.review_case_note_required(
                        verdict=case.verdict, decision=decision
                    ),
                }
            )
        return actions

    def get_evidence_url(self, case: ReviewCase) -> str:
        """The evidence package (JSON; add `?format=pdf` for the PDF)."""
        path = reverse("api:submission-evidence", kwargs={"submission_id": case.submission_id})
        return self.context["request"].build_absolute_uri(path)


class DecisionInputSerializer(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(
        choices=Decision.choices,
        help_text="`confirm` (manipulated), `clear` (authentic) or `escalate` (to staff).",
    )
    note = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Why; required when going against the model's verdict and to escalate.",
    )


class NoteInputSerializer(serializers.Serializer[Any]):
    note = StrictCharField(required=False, allow_blank=True, max_length=2000)


def _case(case_id: uuid.UUID) -> ReviewCase:
    case = selectors.review_case_get(case_id=case_id)
    if case is None:
        raise Http404
    return case


def _refused(error: ValidationError) -> Exception:
    """The service's refusal: a missing note is invalid input; anything else a conflict."""
    message = " ".join(error.messages)
    if error.code == "note_required":
        return InvalidInput({"note": [message]})
    return Conflict(message, code=error.code or "refused")


class CaseList(generics.ListAPIView[ReviewCase]):
    serializer_class = CaseSerializer
    permission_classes = REVIEWERS

    def get_queryset(self) -> Any:
        refuse_empty_parameters(
            self.request, "state", "verdict", "min_probability", "max_probability", "age"
        )
        form = QueueFilterForm(self.request.query_params)
        if not form.is_valid():
            raise InvalidInput(
                {name: [str(e) for e in errors] for name, errors in form.errors.items()}
            )
        return selectors.review_case_queue(
            filters=form.filters(),
            user=self.request.user,  # type: ignore[arg-type]
        )

    @extend_schema(
        summary="List review cases",
        description="The queue as the queue page shows it: by priority, then age (staff see "
        "escalated cases first), narrowed by the same filters. Probabilities are percentages.",
        parameters=[
            OpenApiParameter(
                "state",
                enum=[value for value, _ in selectors.STATE_FILTERS],
                description="Default `open`: pending and escalated.",
            ),
            OpenApiParameter("verdict", enum=Submission.Verdict.values),
            OpenApiParameter("min_probability", int, description="P(fake) from, in %, 0-100."),
            OpenApiParameter("max_probability", int, description="P(fake) up to, in %, 0-100."),
            OpenApiParameter("age", enum=[value for value, _ in selectors.AGE_FILTERS if value]),
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.review_case_expire_leases()
        return super().get(request, *args, **kwargs)


class CaseNext(APIView):
    permission_classes = REVIEWERS

    @extend_schema(
        summary="Claim the next case",
        description="Reserves the most urgent case you may decide for MODERATION_LEASE_MINUTES "
        "and returns it; a case you already hold comes back first. 204 when none waits.",
        request=None,
        responses={
            200: OpenApiResponse(CaseDetailSerializer, "The case, now held by you."),
            204: OpenApiResponse(description="No case is waiting for you."),
        },
    )
    def post(self, request: Request) -> Response:
        case = services.review_case_claim_next(user=request.user)  # type: ignore[arg-type]
        if case is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return _case_answer(request, case.pk)


class CaseDetail(APIView):
    permission_classes = REVIEWERS

    @extend_schema(
        summary="Read one case",
        description="The case, its submission with every face, its history (who did what, "
        "when, with which note) and the decisions you may take now.",
        responses={200: CaseDetailSerializer},
    )
    def get(self, request: Request, case_id: uuid.UUID) -> Response:
        services.review_case_expire_leases()
        return _case_answer(request, case_id)


class CaseClaim(APIView):
    permission_classes = REVIEWERS
    error_statuses = (409,)

    @extend_schema(
        summary="Claim a case",
        description="Hold this case for MODERATION_LEASE_MINUTES so nobody else takes it; "
        "claiming a case you hold renews the lease.",
        request=None,
        responses={200: CaseDetailSerializer},
    )
    def post(self, request: Request, case_id: uuid.UUID) -> Response:
        try:
            services.review_case_claim(case=_case(case_id), user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            raise _refused(error) from None
        return _case_answer(request, case_id)


class CaseDecision(APIView):
    permission_classes = REVIEWERS
    parser_classes = [JSONParser]
    error_statuses = (409,)

    @extend_schema(
        summary="Decide a case",
        description="Confirm it manipulated, clear it as authentic, or escalate it to staff. "
        "Refused (409) for your own uploads, a case someone else holds, a decided case, and "
        "an escalated one unless you are staff; a missing note where one is owed is a 400.",
        request=DecisionInputSerializer,
        responses={200: CaseDetailSerializer},
    )
    def post(self, request: Request, case_id: uuid.UUID) -> Response:
        case = _case(case_id)
        given = DecisionInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            services.review_case_decide(
                case=case,
                user=request.user,  # type: ignore[arg-type]
                decision=Decision(given.validated_data["decision"]),
                note=given.validated_data.get("note", ""),
            )
        except ValidationError as error:
            raise _refused(error) from None
        return _case_answer(request, case_id)


class CaseRelease(APIView):
    permission_classes = REVIEWERS
    parser_classes = [JSONParser]
    error_statuses = (409,)

    @extend_schema(
        summary="Release a case",
        description="Give a case you hold back to the queue undecided, with an optional note.",
        request=NoteInputSerializer,
        responses={200: CaseDetailSerializer},
    )
    def post(self, request: Request, case_id: uuid.UUID) -> Response:
        case = _case(case_id)
        given = NoteInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            services.review_case_release(
                case=case,
                user=request.user,  # type: ignore[arg-type]
                note=given.validated_data.get("note", ""),
            )
        except ValidationError as error:
            raise _refused(error) from None
        return _case_answer(request, case_id)


def _case_answer(request: Request, case_id: uuid.UUID) -> Response:
    case = _case(case_id)
    return Response(CaseDetailSerializer(case, context={"request": request}).data)


class PDFRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return data


class Evidence(APIView):
    permission_classes = REVIEWERS
    renderer_classes = [JSONRenderer, PDFRenderer]

    @extend_schema(
        summary="Export a submission's evidence package",
        description="Everything needed to show what was analysed and decided: the stored "
        "file's hashes, the model (version, checkpoint hash, thresholds, calibration), every "
        "face with its box, scores, quality, crop and heatmap (PNG, base64), and the whole "
        "decision chain. JSON by default; `?format=pdf` for a printable PDF of the same.",
        parameters=[
            OpenApiParameter(
                "format", enum=["json", "pdf"], description="`pdf` for the PDF (default JSON)."
            )
        ],
        responses={
            (200, "application/json"): EvidenceSerializer,
            (200, "application/pdf"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request, submission_id: uuid.UUID) -> Response:
        refuse_empty_parameters(request, "format")
        submission = detection_selectors.submission_get_for_user(
            submission_id=submission_id, user=request.user
        )
        if submission is None:
            raise Http404
        evidence = evidence_build(submission=submission, requested_by=request.user)  # type: ignore[arg-type]
        body = EvidenceSerializer(evidence).data
        stem = f"evidence-{submission.id}"
        if request.accepted_renderer.format == "pdf":
            return Response(
                evidence_pdf(body),
                content_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{stem}.pdf"'},
            )
        return Response(
            body, headers={"Content-Disposition": f'attachment; filename="{stem}.json"'}
        )

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are JSON even when the PDF was asked for.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
