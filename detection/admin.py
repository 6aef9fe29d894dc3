"""Admin for submissions and faces: inspect results, re-run analyses, reopen review cases.

Analysis results are written by the pipeline only, so every field is read-only here;
uploads come through the upload service (validation, re-encoding), never the admin.
"""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from deepfake_site.admin_records import RecordAdmin
from detection import services
from detection.models import Face, Submission, Track
from moderation import services as moderation_services
from moderation.models import ReviewCase
from moderation.rules import REVIEW_CASES


def thumbnail_html(submission_id: uuid.UUID) -> SafeString:
    """A small thumbnail through the access-checked media view (media has no public URL)."""
    url = reverse("detection:submission-thumbnail", kwargs={"submission_id": submission_id})
    return format_html(
        '<img src="{}" alt="" style="height:48px;width:72px;object-fit:cover;border-radius:4px">',
        url,
    )


def _image_link(url: str, height: int = 96) -> SafeString:
    return format_html(
        '<a href="{}"><img src="{}" alt="" style="height:{}px;border-radius:4px"></a>',
        url,
        url,
        height,
    )


def _face_image(face: Face, url_name: str, height: int = 96) -> SafeString:
    url = reverse(url_name, kwargs={"submission_id": face.submission_id, "index": face.index})
    return _image_link(url, height=height)


class ScoreColumns:
    """Scores shown to three decimals, boxes as corners: not 16 digits and float lists."""

    @admin.display(description="P(fake)", ordering="fake_probability")
    def p_fake(self, row: Face | Submission) -> str:
        return "-" if row.fake_probability is None else f"{row.fake_probability:.3f}"

    @admin.display(description="Detection", ordering="detection_probability")
    def p_detection(self, face: Face) -> str:
        return f"{face.detection_probability:.3f}"

    @admin.display(description="Box (x1, y1 to x2, y2)")
    def box_corners(self, face: Face) -> str:
        x1, y1, x2, y2 = face.box
        return f"{x1:.0f}, {y1:.0f} to {x2:.0f}, {y2:.0f}"

    @admin.display(description="Quality", ordering="quality")
    def quality_shown(self, face: Face) -> str:
        reasons = ", ".join(face.quality_reasons)
        return (
            f"{face.get_quality_display()} ({reasons})" if reasons else face.get_quality_display()
        )


class FaceInline(ScoreColumns, admin.TabularInline):
    model = Face
    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        "index",
        "crop_preview",
        "heatmap_preview",
        "p_fake",
        "quality_shown",
        "p_detection",
        "box_corners",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Submission | None = None) -> bool:
        return False

    @admin.display(description="Crop")
    def crop_preview(self, face: Face) -> SafeString:
        return _face_image(face, "detection:face-crop")

    @admin.display(description="Heatmap")
    def heatmap_preview(self, face: Face) -> SafeString:
        return _face_image(face, "detection:face-heatmap")


class TrackInline(admin.TabularInline):
    """A video's people: how often each was seen, its P(fake) and its worst moment."""

    model = Track
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("index", "frames", "good_frames", "judged", "p_fake", "seen", "worst_frame_s")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Submission | None = None) -> bool:
        return False

    @admin.display(description="P(fake)")
    def p_fake(self, track: Track) -> str:
        return f"{track.fake_probability:.3f}"

    @admin.display(description="Seen (s)")
    def seen(self, track: Track) -> str:
        return f"{track.first_s:.1f} to {track.last_s:.1f}"


@admin.register(Submission)
class SubmissionAdmin(ScoreColumns, admin.ModelAdmin):
    list_display = (
        "thumbnail_preview",
        "original_filename",
        "media_type",
        "duration",
        "uploader",
        "status",
        "verdict",
        "p_fake",
        "face_count",
        "review_state",
        "model_version",
        "queued_at",
    )
    list_display_links = ("thumbnail_preview", "original_filename")
    list_filter = (
        "media_type",
        "status",
        "verdict",
        "model_trained",
        "model_version",
        "queued_at",
    )
    search_fields = ("uploader__username", "=sha256", "original_filename")
    list_select_related = ("uploader", "review_case", "inherited_outcome__source_case")
    date_hierarchy = "queued_at"
    inlines = (FaceInline, TrackInline)
    actions = ("rerun_analysis", "reopen_case")
    fields = readonly_fields = (
        "id",
        "uploader",
        "original_filename",
        "media_type",
        "overlay_preview",
        "sha256",
        "pdq",
        "pdq_quality",
        "provenance",
        "byte_size",
        "width",
        "height",
        "format",
        "duration",
        "frames_analysed",
        "frames_total",
        "status",
        "failure_reason",
        "attempts",
        "claimed_by_task",
        "queued_at",
        "started_at",
        "finished_at",
        "model_version",
        "model_trained",
        "verdict",
        "p_fake",
        "flag_threshold",
        "uncertain_threshold",
        "timings_ms",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Submission]:
        return super().get_queryset(request).annotate(face_total=Count("faces"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Submission | None = None) -> bool:
        # A save here would write back a stale copy over what the worker is storing.
        return False

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("detection.change_submission")

    def has_reopen_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_CASES)

    @admin.display(description="Image")
    def thumbnail_preview(self, submission: Submission) -> SafeString:
        return thumbnail_html(submission.pk)

    @admin.display(description="Duration", ordering="duration_s")
    def duration(self, submission: Submission) -> str:
        return "—" if submission.duration_s is None else f"{submission.duration_s:.1f} s"

    @admin.display(description="Faces", ordering="face_total")
    def face_count(self, submission: Submission) -> int:
        return int(getattr(submission, "face_total", 0))

    @admin.display(description="Review")
    def review_state(self, submission: Submission) -> str:
        case = getattr(submission, "review_case", None)
        if case is not None:
            return case.get_state_display()
        inherited = getattr(submission, "inherited_outcome", None)
        if inherited is not None:
            return f"{inherited.source_case.get_state_display()} (inherited)"
        return "—"

    @admin.display(description="Overlay")
    def overlay_preview(self, submission: Submission) -> SafeString | str:
        if not submission.overlay:
            return "—"
        return _image_link(
            reverse("detection:submission-overlay", kwargs={"submission_id": submission.pk}),
            height=320,
        )

    @admin.action(description="Re-run analysis", permissions=["rerun"])
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        count = 0
        for submission in queryset:
            services.submission_reanalyze(submission=submission)
            count += 1
        self.message_user(request, f"Re-queued {count} submission(s) for analysis.")

    @admin.action(description="Reopen review case", permissions=["reopen"])
    def reopen_case(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        without_case = queryset.filter(review_case__isnull=True).count()
        if without_case:
            self.message_user(
                request,
                f"{without_case} submission(s) have no review case to reopen.",
                messages.WARNING,
            )
        cases = ReviewCase.objects.filter(submission__in=queryset)
        reopen_cases(self, request, cases)


@admin.register(Face)
class FaceAdmin(RecordAdmin, ScoreColumns, admin.ModelAdmin):
    """Faces are the evidence behind a verdict and a decision: a re-run replaces them."""

    list_display = (
        "crop_preview",
        "heatmap_preview",
        "submission_link",
        "index",
        "p_fake",
        "quality_shown",
        "p_detection",
    )
    list_filter = ("quality", "submission__verdict", "submission__model_version")
    search_fields = ("submission__uploader__username", "=submission__sha256")
    list_select_related = ("submission",)
    fields = readonly_fields = ("submission_link", *FaceInline.fields)

    @admin.display(description="Crop")
    def crop_preview(self, face: Face) -> SafeString:
        return _face_image(face, "detection:face-crop", height=48)

    @admin.display(description="Heatmap")
    def heatmap_preview(self, face: Face) -> SafeString:
        return _face_image(face, "detection:face-heatmap", height=48)

    @admin.display(description="Submission", ordering="submission__original_filename")
    def submission_link(self, face: Face) -> SafeString:
        url = reverse("admin:detection_submission_change", args=[face.submission_id])
        return format_html('<a href="{}">{}</a>', url, face.submission.original_filename)


def reopen_cases(
    model_admin: admin.ModelAdmin, request: HttpRequest, cases: QuerySet[ReviewCase]
) -> None:
    """The submission and review-case admins' reopen action: the service, then the tally."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    result = moderation_services.review_case_reopen_many(cases=cases, user=user)
    if result.changed:
        model_admin.message_user(
            request, f"Reopened {len(result.changed)} case(s).", messages.SUCCESS
        )
    if result.refused:
        model_admin.message_user(
            request,
            f"Skipped {len(result.refused)} case(s) that were not decided.",
            messages.WARNING,
        )
