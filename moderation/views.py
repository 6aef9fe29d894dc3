"""Moderator pages: the queue, next case, the case page, bulk decisions, the log and metrics.

Every view is for moderators and staff only (`reviewer_required`); views parse input, call
one service or selector, and render or redirect.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from deepfake_site.http import SignedInRequest
from detection.charts import video_result_context
from detection.selectors import model_caution, submission_get_for_user
from moderation import rules, selectors, services
from moderation.charts import bar_chart, line_chart
from moderation.forms import (
    AddToBankForm,
    BulkDecisionForm,
    DecisionForm,
    DecisionLogFilterForm,
    QueueFilterForm,
    ReleaseForm,
    ReopenInheritedForm,
)
from moderation.metrics import moderation_metrics
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.templatetags.moderation_extras import state_badge

PAGE_SIZE = 25
LOG_PAGE_SIZE = 50
METRICS_WINDOWS = (7, 30, 90)

# One list drives the key handlers (data-shortcut attributes) and the legend on the page.
CASE_SHORTCUTS = [
    ("c", "Confirm manipulated"),
    ("a", "Mark authentic"),
    ("e", "Escalate to staff"),
    ("r", "Release back to the queue"),
    ("n", "Next case"),
    ("b", "Blur or unblur images"),
    ("/", "Write a note"),
    ("Esc", "Leave the note field"),
]
QUEUE_SHORTCUTS = [("n", "Next case"), ("b", "Blur or unblur thumbnails")]

View = Callable[..., HttpResponseBase]


def reviewer_required(view: View) -> View:
    """Anonymous visitors go to the log-in page; signed-in non-moderators get 403."""

    @wraps(view)
    def wrapped(request: SignedInRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not rules.user_is_reviewer(user=request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _get_case(case_id: uuid.UUID) -> ReviewCase:
    case = selectors.review_case_get(case_id=case_id)
    if case is None:
        raise Http404("No such case.")
    return case


@require_GET
@reviewer_required
def queue(request: SignedInRequest) -> HttpResponse:
    services.review_case_expire_leases()
    now = timezone.now()
    form = QueueFilterForm(request.GET or None)
    cases = selectors.review_case_queue(filters=form.filters(), user=request.user, now=now)
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    filters_query = form.querystring()
    # Cases ticked before a bulk decision that was refused stay ticked.
    selected = set(request.GET.getlist("selected"))
    return render(
        request,
        "moderation/queue.html",
        {
            "form": form,
            "page": page,
            "rows": [
                _queue_row(case, user=request.user, now=now, selected=str(case.pk) in selected)
                for case in page.object_list
            ],
            "counts": selectors.review_case_counts(now=now),
            "filters_query": filters_query,
            "bulk_form": BulkDecisionForm(initial={"filters": filters_query}),
            "decisions": Decision.choices,
            "shortcuts": QUEUE_SHORTCUTS,
            "now": now,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@reviewer_required
def next_case(request: SignedInRequest) -> HttpResponse:
    return _open_next_case(request)


@require_GET
@reviewer_required
def case_detail(request: SignedInRequest, case_id: uuid.UUID) -> HttpResponse:
    services.review_case_expire_leases()
    case = _get_case(case_id)
    return _render_case(request, case, DecisionForm(case=case), ReleaseForm())


@require_POST
@reviewer_required
def case_claim(request: SignedInRequest, case_id: uuid.UUID) -> HttpResponse:
    case = _get_case(case_id)
    try:
        services.review_case_claim(case=case, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("moderation:case-detail", case_id=case.pk)


@require_POST
@reviewer_required
def case_decide(request: SignedInRequest, case_id: uuid.UUID) -> HttpResponse:
    """Decide, then open the next case: reviewing is a stream, not a round trip."""
    case = _get_case(case_id)
    form = DecisionForm(request.POST, case=case)
    if form.is_valid():
        decision = Decision(form.cleaned_data["decision"])
        note = form.cleaned_data["note"]
        try:
            if form.cleaned_data["only_this_case"]:
                services.review_case_decide(
                    case=case, user=request.user, decision=decision, note=note
                )
                settled = services.BulkResult(changed=[case])
            else:
                settled = services.review_case_decide_cluster(
                    case=case, user=request.user, decision=decision, note=note
                )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            name = case.submission.original_filename or "the photo"
            copies = len(settled.changed) - 1
            also = f" and {copies} near-cop{'y' if copies == 1 else 'ies'}" if copies else ""
            messages.success(request, f"{decision.label}: {name}{also}.")
            for skipped, reason in settled.refused:
                messages.warning(
                    request,
                    f"Near-copy {skipped.submission.original_filename or skipped.pk} "
                    f"not decided: {reason}",
                )
            return _open_next_case(request)
    return _render_case(request, case, form, ReleaseForm(), status=400)


@require_POST
@reviewer_required
def case_release(request: SignedInRequest, case_id: uuid.UUID) -> HttpResponse:
    case = _get_case(case_id)
    form = ReleaseForm(request.POST)
    if form.is_valid():
        try:
            services.review_case_release(
                case=case, user=request.user, note=form.cleaned_data["note"]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Case released back to the queue.")
            return redirect("moderation:queue")
    return _render_case(request, case, DecisionForm(case=case), form, status=400)


@require_POST
@reviewer_required
def case_add_to_bank(request: SignedInRequest, case_id: uuid.UUID) -> HttpResponse:
    case = _get_case(case_id)
    form = AddToBankForm(request.POST)
    if form.is_valid():
        try:
            entry = services.hash_bank_add_from_case(
                case=case,
                bank=form.cleaned_data["bank"],
                user=request.user,
                label=form.cleaned_data["label"],
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Added to the hash bank “{entry.bank.name}”.")
    else:
        messages.error(request, "Choose a known-manipulated bank.")
    return redirect("moderation:case-detail", case_id=case.pk)


@require_POST
@reviewer_required
def submission_reopen_inherited(request: SignedInRequest, submission_id: uuid.UUID) -> HttpResponse:
    """Open a case of its own for a submission that inherited a near-copy's outcome."""
    submission = submission_get_for_user(submission_id=submission_id, user=request.user)
    if submission is None:
        raise Http404("No such submission.")
    form = ReopenInheritedForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        case = services.review_case_reopen_inherited(
            submission=submission, user=request.user, note=note
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("detection:submission-detail", submission_id=submission.pk)
    messages.success(request, "The photo has a case of its own now, pending review.")
    return redirect("moderation:case-detail", case_id=case.pk)


@require_POST
@reviewer_required
def bulk_decide(request: SignedInRequest) -> HttpResponse:
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        # Back to the same view with the same cases ticked, ready for a second try.
        filters = QueueFilterForm(QueryDict(request.POST.get("filters", ""))).querystring()
        selected = QueryDict(mutable=True)
        selected.setlist("selected", request.POST.getlist("cases"))
        return _redirect_to_queue(
            "&".join(part for part in (filters, selected.urlencode()) if part)
        )
    decision = Decision(form.cleaned_data["decision"])
    result = services.review_case_decide_bulk(
        cases=form.cleaned_data["cases"],
        user=request.user,
        decision=decision,
        note=form.cleaned_data["note"],
    )
    if result.changed:
        messages.success(request, f"{decision.label}: {len(result.changed)} case(s).")
    for case, reason in result.refused:
        messages.warning(
            request, f"Skipped {case.submission.original_filename or case.pk}: {reason}"
        )
    return _redirect_to_queue(form.queue_querystring())


@require_GET
@reviewer_required
def decision_log(request: SignedInRequest) -> HttpResponse:
    form = DecisionLogFilterForm(request.GET or None)
    events = selectors.review_event_decision_log(filters=form.filters())
    page = Paginator(events, LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "moderation/decision_log.html",
        {"form": form, "page": page, "filters_query": query.urlencode()},
        status=400 if form.errors else 200,
    )


@require_GET
@reviewer_required
def decision_log_csv(request: SignedInRequest) -> HttpResponse | StreamingHttpResponse:
    form = DecisionLogFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return HttpResponseBadRequest(
            "Invalid filters: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
            content_type="text/plain; charset=utf-8",
        )
    events = selectors.review_event_decision_log(filters=form.filters())
    response = StreamingHttpResponse(
        _csv_lines(events.iterator(chunk_size=500)), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="decision-log-{stamp}.csv"'
    return response


@require_GET
@reviewer_required
def metrics(request: SignedInRequest) -> HttpResponse:
    requested = request.GET.get("days", "")
    days = int(requested) if requested in {str(window) for window in METRICS_WINDOWS} else 30
    figures = moderation_metrics(days=days)
    labels = [row.day.isoformat() for row in figures.queue_days]
    return render(
        request,
        "moderation/metrics.html",
        {
            "metrics": figures,
            "windows": METRICS_WINDOWS,
            "charts": {
                "decisions": bar_chart(
                    labels,
                    [row.decisions for row in figures.queue_days],
                    title="Decisions per day",
                ),
                "pending": line_chart(
                    labels,
                    [row.pending for row in figures.queue_days],
                    title="Cases awaiting a decision at the end of each day",
                ),
                "oldest": line_chart(
                    labels,
                    [row.oldest_hours for row in figures.queue_days],
                    title="Age in hours of the oldest waiting case at the end of each day",
                ),
            },
        },
    )


CSV_HEADER = [
    "time",
    "decision",
    "moderator",
    "note",
    "case",
    "submission",
    "sha256",
    "uploader",
    "model_verdict",
    "fake_probability",
    "case_state_now",
]


class _Echo:
    """The file-like object csv.writer needs; each row comes back as a string to stream."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(events: Iterator[ReviewEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for event in events:
        case = event.case
        yield writer.writerow(
            [
                timezone.localtime(event.created_at).isoformat(),
                event.kind,
                event.actor.get_username() if event.actor else "",
                _spreadsheet_safe(event.note),
                str(case.pk),
                str(case.submission_id),
                case.submission.sha256,
                _spreadsheet_safe(case.submission.uploader.get_username()),
                case.verdict,
                f"{case.fake_probability:.4f}",
                case.state,
            ]
        )


def _spreadsheet_safe(text: str) -> str:
    # Free text that starts like a formula would run as one when the CSV is opened in a
    # spreadsheet (CSV injection); a leading apostrophe makes it inert text.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@dataclass(frozen=True)
class QueueRow:
    case: ReviewCase
    refusal: str | None  # why this moderator cannot decide it (its box cannot be ticked)
    selected: bool
    in_review: bool
    state_label: str
    state_badge: str


def _queue_row(case: ReviewCase, *, user: User, now: datetime, selected: bool) -> QueueRow:
    in_review = case.is_open and case.lease_active(now)
    if case.awaiting_second_review:
        label, badge = "Second review", "pending"
    elif in_review and case.state == ReviewCase.State.PENDING:
        label, badge = "In review", "pending"
    else:
        label, badge = case.get_state_display(), state_badge(case.state)
    return QueueRow(
        case=case,
        refusal=rules.review_case_refusal(case=case, user=user, decision=Decision.CONFIRM, now=now),
        selected=selected,
        in_review=in_review,
        state_label=label,
        state_badge=badge,
    )


def _open_next_case(request: SignedInRequest) -> HttpResponse:
    case = services.review_case_claim_next(user=request.user)
    if case is None:
        messages.info(request, "The queue is empty: no case is waiting for you.")
        return redirect("moderation:queue")
    return redirect("moderation:case-detail", case_id=case.pk)


def _redirect_to_queue(querystring: str) -> HttpResponse:
    url = reverse("moderation:queue")
    return redirect(f"{url}?{querystring}" if querystring else url)


def _render_case(
    request: SignedInRequest,
    case: ReviewCase,
    decision_form: DecisionForm,
    release_form: ReleaseForm,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    submission = case.submission
    actions = [
        {
            "decision": decision,
            "label": label,
            "shortcut": shortcut,
            "style": style,
            "needs_note": rules.review_case_note_required(verdict=case.verdict, decision=decision),
            "refusal": rules.review_case_refusal(
                case=case, user=request.user, decision=decision, now=now
            ),
        }
        for decision, label, shortcut, style in (
            (Decision.CONFIRM, "Confirm manipulated", "c", "danger"),
            (Decision.CLEAR, "Mark authentic", "a", "success"),
            (Decision.ESCALATE, "Escalate to staff", "e", "warn"),
        )
    ]
    return render(
        request,
        "moderation/case_detail.html",
        {
            "case": case,
            "submission": submission,
            "faces": submission.faces.order_by("index"),
            "lease_active": case.lease_active(now),
            "held_by_me": case.lease_active(now) and case.claimed_by_id == request.user.pk,
            "actions": actions,
            "decision_form": decision_form,
            "release_form": release_form,
            "other_submissions": selectors.uploader_other_submissions(case=case),
            "same_image": selectors.review_case_same_image_decisions(case=case),
            "cluster_others": list(selectors.review_case_cluster_others(case=case)),
            "near_copies": selectors.submission_near_copies(submission=submission),
            "inherited_by": selectors.review_case_inherited_by(case=case),
            "add_to_bank_form": _add_to_bank_form(request, case),
            "events": selectors.review_case_events(case=case),
            "caution": model_caution(),
            "shortcuts": CASE_SHORTCUTS,
            **(video_result_context(submission=submission) if submission.is_video else {}),
        },
        status=status,
    )


def _add_to_bank_form(request: SignedInRequest, case: ReviewCase) -> AddToBankForm | None:
    """The form, where this user may add this confirmed case to a known-manipulated bank."""
    if case.state != ReviewCase.State.CONFIRMED or not rules.user_may_add_to_banks(
        user=request.user
    ):
        return None
    return AddToBankForm()
