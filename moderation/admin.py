"""Admin for review cases and their audit trail.

Cases change only through the moderation services (the queue pages, or the "reopen" action
here), so the admin shows them read-only. Events are append-only: nobody, superusers
included, can add, change or delete one here.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from detection.admin import ScoreColumns, reopen_cases, thumbnail_html
from moderation.models import ReviewCase, ReviewEvent
from moderation.rules import REVIEW_CASES


class ReviewEventInline(admin.TabularInline):
    model = ReviewEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "kind", "actor", "note")
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: ReviewCase | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ReviewCase | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ReviewCase | None = None) -> bool:
        return False


@admin.register(ReviewCase)
class ReviewCaseAdmin(ScoreColumns, admin.ModelAdmin):
    list_display = (
        "thumbnail_preview",
        "submission_link",
        "uploader",
        "state",
        "kind",
        "verdict",
        "p_fake",
        "priority",
        "opened_at",
        "decided_by",
    )
    list_display_links = ("thumbnail_preview",)
    list_filter = ("state", "kind", "verdict", "opened_at", "decided_at")
    search_fields = ("submission__uploader__username", "=submission__sha256")
    list_select_related = ("submission__uploader", "claimed_by", "decided_by")
    date_hierarchy = "opened_at"
    ordering = ("-opened_at",)
    inlines = (ReviewEventInline,)
    actions = ("reopen_case",)
    fields = readonly_fields = (
        "id",
        "submission_link",
        "uploader",
        "state",
        "kind",
        "verdict",
        "p_fake",
        "face_count",
        "priority",
        "opened_at",
        "claimed_by",
        "lease_expires_at",
        "decided_by",
        "decided_at",
        "moderation_page",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ReviewCase | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ReviewCase | None = None) -> bool:
        return False

    def has_reopen_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_CASES)

    @admin.display(description="Image")
    def thumbnail_preview(self, case: ReviewCase) -> SafeString:
        return thumbnail_html(case.submission_id)

    @admin.display(description="Submission", ordering="submission__original_filename")
    def submission_link(self, case: ReviewCase) -> SafeString:
        url = reverse("admin:detection_submission_change", args=[case.submission_id])
        return format_html('<a href="{}">{}</a>', url, case.submission.original_filename)

    @admin.display(description="Uploader", ordering="submission__uploader__username")
    def uploader(self, case: ReviewCase) -> str:
        return case.submission.uploader.get_username()

    @admin.display(description="Moderation page")
    def moderation_page(self, case: ReviewCase) -> SafeString:
        url = reverse("moderation:case-detail", kwargs={"case_id": case.pk})
        return format_html('<a href="{}">Open in the moderation queue</a>', url)

    @admin.action(description="Reopen review case", permissions=["reopen"])
    def reopen_case(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> None:
        reopen_cases(self, request, queryset)


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "actor", "case_link", "uploader", "short_note")
    list_filter = ("kind", "created_at")
    search_fields = (
        "actor__username",
        "case__submission__uploader__username",
        "=case__submission__sha256",
        "note",
    )
    list_select_related = ("actor", "case__submission__uploader")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = readonly_fields = ("created_at", "kind", "actor", "case_link", "note")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ReviewEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ReviewEvent | None = None) -> bool:
        return False

    @admin.display(description="Case")
    def case_link(self, event: ReviewEvent) -> SafeString:
        url = reverse("admin:moderation_reviewcase_change", args=[event.case_id])
        return format_html('<a href="{}">{}</a>', url, event.case.submission.original_filename)

    @admin.display(description="Uploader", ordering="case__submission__uploader__username")
    def uploader(self, event: ReviewEvent) -> str:
        return event.case.submission.uploader.get_username()

    @admin.display(description="Note")
    def short_note(self, event: ReviewEvent) -> str:
        return event.note if len(event.note) <= 80 else event.note[:79] + "…"
