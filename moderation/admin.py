"""Admin for review cases and their audit trail, and for hash banks.

Cases change only through the moderation services (the queue pages, or the "reopen" action
here), so the admin shows them read-only. Events are append-only: nobody, superusers
included, can add, change or delete one here. Hash banks are staff's to keep: created and
edited here, filled by importing text (one PDQ hash per line, the format Hasher-Matcher-
Actioner and ThreatExchange tools exchange) and exported the same way.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import slugify

from deepfake_site.admin_records import RecordAdmin
from detection.admin import ScoreColumns, reopen_cases, thumbnail_html
from moderation import selectors, services
from moderation.forms import BankImportForm
from moderation.models import HashBank, HashBankEntry, ReviewCase, ReviewEvent
from moderation.rules import REVIEW_CASES

_PDQ_SEARCH = re.compile(r"\s*[0-9a-fA-F]{64}\s*")


class ReviewEventInline(RecordAdmin, admin.TabularInline):
    model = ReviewEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "kind", "actor", "note")
    ordering = ("created_at", "id")


@admin.register(ReviewCase)
class ReviewCaseAdmin(RecordAdmin, ScoreColumns, admin.ModelAdmin):
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
class ReviewEventAdmin(RecordAdmin, admin.ModelAdmin):
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


@admin.register(HashBank)
class HashBankAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "entry_count", "created_at", "export_link")
    list_filter = ("kind",)
    search_fields = ("name",)
    fields = ("name", "kind", "description", "entry_count", "text_tools")
    readonly_fields = ("entry_count", "text_tools")

    def get_queryset(self, request: HttpRequest) -> QuerySet[HashBank]:
        return super().get_queryset(request).annotate(entry_total=Count("entries"))

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:bank_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="moderation_hashbank_import",
            ),
            path(
                "<int:bank_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="moderation_hashbank_export",
            ),
        ]
        return own + super().get_urls()

    @admin.display(description="Hashes", ordering="entry_total")
    def entry_count(self, bank: HashBank) -> int:
        return int(getattr(bank, "entry_total", 0))

    @admin.display(description="Export")
    def export_link(self, bank: HashBank) -> SafeString:
        url = reverse("admin:moderation_hashbank_export", args=[bank.pk])
        return format_html('<a href="{}">Download as text</a>', url)

    @admin.display(description="Import and export")
    def text_tools(self, bank: HashBank) -> SafeString | str:
        if bank.pk is None:
            return "Save the bank first, then import hashes into it."
        return format_html(
            '<a href="{}">Import hashes from text</a> · <a href="{}">Export as text</a>',
            reverse("admin:moderation_hashbank_import", args=[bank.pk]),
            reverse("admin:moderation_hashbank_export", args=[bank.pk]),
        )

    def import_view(self, request: HttpRequest, bank_id: int) -> HttpResponse:
        bank = get_object_or_404(HashBank, pk=bank_id)
        if not self.has_change_permission(request, bank) or not request.user.has_perm(
            "moderation.add_hashbankentry"
        ):
            raise PermissionDenied
        form = BankImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            user = request.user if isinstance(request.user, User) else None
            try:
                result = services.hash_bank_import(
                    bank=bank, text=form.cleaned_data["text"], user=user
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(
                    request,
                    f"Imported {result.added} hash(es) into “{bank.name}”; "
                    f"{result.already_there} were there already.",
                    messages.SUCCESS,
                )
                return redirect("admin:moderation_hashbank_change", bank.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "bank": bank,
            "form": form,
            "title": f"Import hashes into {bank.name}",
        }
        return render(request, "admin/moderation/hashbank/import.html", context)

    def export_view(self, request: HttpRequest, bank_id: int) -> HttpResponse:
        bank = get_object_or_404(HashBank, pk=bank_id)
        if not self.has_view_permission(request, bank):
            raise PermissionDenied
        response = HttpResponse(
            selectors.hash_bank_export(bank=bank), content_type="text/plain; charset=utf-8"
        )
        stamp = timezone.localtime().strftime("%Y%m%d")
        name = slugify(bank.name) or "bank"
        response["Content-Disposition"] = f'attachment; filename="{name}-pdq-{stamp}.txt"'
        return response


@admin.register(HashBankEntry)
class HashBankEntryAdmin(admin.ModelAdmin):
    list_display = ("pdq", "label", "bank", "added_at", "added_by", "source_case_link")
    list_filter = ("bank",)
    search_fields = ("label",)
    list_select_related = ("bank", "added_by")
    fields = ("bank", "pdq", "label", "added_at", "added_by", "source_case_link")
    readonly_fields = ("added_at", "added_by", "source_case_link")
    ordering = ("-added_at", "-id")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[HashBankEntry], search_term: str
    ) -> tuple[QuerySet[HashBankEntry], bool]:
        # A whole hash finds its entries exactly, however the database stores it.
        if _PDQ_SEARCH.fullmatch(search_term):
            return queryset.filter(pdq=search_term.strip().lower()), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request: HttpRequest, obj: HashBankEntry, form: Any, change: bool) -> None:
        if not change and isinstance(request.user, User):
            obj.added_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="From case")
    def source_case_link(self, entry: HashBankEntry) -> SafeString | str:
        case_id: uuid.UUID | None = entry.source_case_id
        if case_id is None:
            return "—"
        url = reverse("moderation:case-detail", kwargs={"case_id": case_id})
        return format_html('<a href="{}">{}</a>', url, case_id)
