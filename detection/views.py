"""Uploader pages: upload, live status and results, my submissions, access-checked media."""

from __future__ import annotations

import functools
import json
import mimetypes
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_safe
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from deepfake_site.http import SignedInRequest
from deepfake_site.selectors import api_token_get_current
from deepfake_site.services import api_token_rotate
from detection import selectors
from detection.charts import video_result_context
from detection.forms import SubmissionFilterForm, UploadForm
from detection.models import Face, Submission
from detection.upload_gate import FileOutcome, UploadRefused, uploads_accept
from detection.video_validation import ACCEPTED_CONTENT_TYPES
from moderation.forms import ReopenInheritedForm
from moderation.rules import user_is_reviewer
from moderation.selectors import submission_near_copies, submission_outcome

MediaView = Callable[..., HttpResponseBase]
# One range of bytes (RFC 9110): what browsers ask for to seek in a video.
_BYTE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RANGE_CHUNK = 64 * 1024


def login_or_token_required(view: MediaView) -> MediaView:
    """Media are fetched by browsers (session) and by API clients (the `Token` header).

    A request that carries credentials which do not authenticate comes from an API client:
    it gets the API's 401 in JSON, not a redirect to a log-in page it cannot use.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated and request.headers.get("Authorization"):
            try:
                request.user = _token_user(request)
            except AuthenticationFailed as failure:
                response = JsonResponse(
                    {"code": failure.get_codes(), "detail": str(failure.detail)}, status=401
                )
                response["WWW-Authenticate"] = TokenAuthentication().authenticate_header(request)
                return response
        return login_required(view)(request, *args, **kwargs)

    return wrapper


def _token_user(request: HttpRequest) -> User:
    authenticated = TokenAuthentication().authenticate(Request(request))
    if authenticated is None:
        # Another scheme (Basic, Bearer...): still a client that expected an API answer.
        raise AuthenticationFailed("Send the header `Authorization: Token <key>`.")
    user: User = authenticated[0]
    return user


def _get_submission_for_user(request: HttpRequest, submission_id: uuid.UUID) -> Submission:
    submission = selectors.submission_get_for_user(submission_id=submission_id, user=request.user)
    if submission is None:
        raise Http404("No such submission")
    return submission


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: SignedInRequest) -> HttpResponse:
    """One photo leads to its result page; several are answered with a line each.

    With JavaScript the page sends a batch one photo per request to the API, with progress;
    this answer to one request carrying them all is the page without it.
    """
    if request.method != "POST":
        return render(request, "detection/upload.html", _upload_context(UploadForm()))
    try:
        outcomes = uploads_accept(request, user=request.user)
    except UploadRefused as refusal:
        return _upload_refused(request, refusal)
    if len(outcomes) > 1:
        return _batch_answer(request, outcomes)
    outcome = outcomes[0]
    if outcome.refusal is not None:
        return _upload_refused(request, outcome.refusal)
    assert outcome.accepted is not None
    if outcome.accepted.requeued:
        messages.info(request, "This photo failed before; it is being analysed again.")
    elif not outcome.accepted.created:
        messages.info(request, "You already uploaded this image; here is its analysis.")
    return redirect("detection:submission-detail", submission_id=outcome.accepted.submission.id)


def _upload_refused(request: SignedInRequest, refusal: UploadRefused) -> HttpResponse:
    form = UploadForm(data={})
    if refusal.retry_after is not None or refusal.status == 411:
        # Nothing about the file itself: the request as a whole was refused.
        context = _upload_context(form, refusal=refusal.message)
    else:
        form.add_error("image", refusal.message)
        context = _upload_context(form)
    response = render(request, "detection/upload.html", context, status=refusal.status)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    return response


def _batch_answer(request: SignedInRequest, outcomes: list[FileOutcome]) -> HttpResponse:
    refusals = [outcome.refusal for outcome in outcomes if outcome.refusal is not None]
    # Some photo went in: the request did what it could. None did: the first reason says why.
    status = 200 if len(refusals) < len(outcomes) else refusals[0].status
    context = _upload_context(UploadForm(), results=outcomes)
    return render(request, "detection/upload.html", context, status=status)


@login_required
@require_GET
def submission_detail(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponse:
    submission = _get_submission_for_user(request, submission_id)
    return render(request, "detection/submission_detail.html", _detail_context(request, submission))


@login_required
@require_GET
def submission_status(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponse:
    """The part of the result page that htmx polls until the analysis is final."""
    submission = _get_submission_for_user(request, submission_id)
    return render(
        request, "detection/partials/submission_body.html", _detail_context(request, submission)
    )


@login_required
@require_GET
def submission_list(request: SignedInRequest) -> HttpResponse:
    filters = SubmissionFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    submissions = selectors.submission_list_for_user(
        user=request.user, status=cleaned.get("status", ""), verdict=cleaned.get("verdict", "")
    )
    page = Paginator(submissions, 20).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "detection/submission_list.html",
        {"page": page, "filters": filters, "query": query.urlencode()},
    )


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request: SignedInRequest) -> HttpResponse:
    """Create or rotate the user's API token; the key is shown only right after it changes."""
    new_key = api_token_rotate(user=request.user) if request.method == "POST" else None
    token = api_token_get_current(user=request.user)
    return render(request, "detection/api_token.html", {"new_key": new_key, "token": token})


@login_or_token_required
@require_safe
def submission_image(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponseBase:
    """The stored upload: the photo, or the video (whose own view is `submission_video`)."""
    return _file_response(request, _get_submission_for_user(request, submission_id).image.name)


@login_or_token_required
@require_safe
def submission_video(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponseBase:
    """The stored clip, in byte ranges as players ask for them to seek."""
    submission = _get_submission_for_user(request, submission_id)
    if not submission.is_video:
        raise Http404("Not a video")
    return _file_response(request, submission.image.name)


@login_or_token_required
@require_safe
def submission_poster(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponseBase:
    return _file_response(request, _get_submission_for_user(request, submission_id).poster.name)


@login_or_token_required
@require_safe
def submission_thumbnail(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponseBase:
    submission = _get_submission_for_user(request, submission_id)
    return _file_response(request, submission.thumbnail.name)


@login_or_token_required
@require_safe
def submission_overlay(request: HttpRequest, submission_id: uuid.UUID) -> HttpResponseBase:
    submission = _get_submission_for_user(request, submission_id)
    return _file_response(request, submission.overlay.name)


@login_or_token_required
@require_safe
def face_crop(request: HttpRequest, submission_id: uuid.UUID, index: int) -> HttpResponseBase:
    return _file_response(request, _get_face(request, submission_id, index).crop.name)


@login_or_token_required
@require_safe
def face_heatmap(request: HttpRequest, submission_id: uuid.UUID, index: int) -> HttpResponseBase:
    return _file_response(request, _get_face(request, submission_id, index).heatmap.name)


def _get_face(request: HttpRequest, submission_id: uuid.UUID, index: int) -> Face:
    submission = _get_submission_for_user(request, submission_id)
    face = submission.faces.filter(index=index).first()
    if face is None:
        raise Http404("No such face")
    return face


def _file_response(request: HttpRequest, name: str | None) -> HttpResponseBase:
    """A stored file with an explicit type, whole or the one byte range asked for.

    Ranges let a player seek in a video without downloading all of it first. A request for
    several ranges is answered with the whole file, as RFC 9110 allows.
    """
    if not name or not default_storage.exists(name):
        raise Http404("No such file")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    size = default_storage.size(name)
    wanted = _BYTE_RANGE.match(request.headers.get("Range", "").replace(" ", ""))
    response: HttpResponseBase
    if wanted is None:
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    else:
        byte_range = _byte_range(wanted, size)
        if byte_range is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
        else:
            first, last = byte_range
            response = StreamingHttpResponse(
                _read_range(name, first, last), status=206, content_type=content_type
            )
            response["Content-Length"] = str(last - first + 1)
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = "inline"
    return response


def _byte_range(wanted: re.Match[str], size: int) -> tuple[int, int] | None:
    """First and last byte of `bytes=a-b`, `bytes=a-` or `bytes=-n`; None if unsatisfiable."""
    start, end = wanted.group(1), wanted.group(2)
    if not start and not end:
        return None
    if not start:  # the last n bytes
        length = int(end)
        return (max(size - length, 0), size - 1) if length and size else None
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    return (first, last) if first <= last else None


def _read_range(name: str, first: int, last: int) -> Iterator[bytes]:
    with default_storage.open(name, "rb") as stored:
        stored.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = stored.read(min(_RANGE_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _upload_context(
    form: UploadForm, refusal: str = "", results: list[FileOutcome] | None = None
) -> dict[str, object]:
    return {
        "form": form,
        "refusal": refusal,
        "results": results or [],
        # For the batch page's script, which shows each photo's analysis as it ends.
        "verdict_labels": json.dumps(dict(Submission.Verdict.choices)),
        "status_labels": json.dumps(dict(Submission.Status.choices)),
        "max_files": settings.UPLOAD_MAX_FILES,
        "max_bytes": settings.UPLOAD_MAX_BYTES,
        "max_megabytes": settings.UPLOAD_MAX_BYTES / 1_000_000,
        "max_megapixels": settings.UPLOAD_MAX_PIXELS / 1_000_000,
        "max_video_bytes": settings.VIDEO_MAX_BYTES,
        "max_video_megabytes": settings.VIDEO_MAX_BYTES / 1_000_000,
        "max_video_seconds": settings.VIDEO_MAX_SECONDS,
        "video_types": ",".join(ACCEPTED_CONTENT_TYPES),
    }


# A first analysis running this long is most likely waiting for the model to load.
_PREPARING_AFTER = timedelta(seconds=8)


def _detail_context(request: HttpRequest, submission: Submission) -> dict[str, object]:
    faces = list(submission.faces.all()) if submission.is_final else []
    video = video_result_context(submission=submission) if submission.is_video else {}
    running_for = (
        timezone.now() - submission.started_at
        if submission.status == Submission.Status.PROCESSING and submission.started_at
        else None
    )
    # Moderators also see where an inherited outcome came from, and the near-copies.
    reviewer = user_is_reviewer(user=request.user)
    return {
        "submission": submission,
        "faces": faces,
        "low_quality_faces": sum(face.quality == Face.Quality.LOW for face in faces),
        "caution": selectors.model_caution() if faces else None,
        "preparing_model": running_for is not None and running_for > _PREPARING_AFTER,
        "queue_position": selectors.submission_queue_position(submission=submission),
        "outcome": submission_outcome(submission=submission),
        "processing_seconds": (
            submission.processing_ms / 1000 if submission.processing_ms is not None else None
        ),
        "is_reviewer": reviewer,
        "near_copies": (
            submission_near_copies(submission=submission)
            if reviewer and submission.is_final
            else []
        ),
        "reopen_form": ReopenInheritedForm() if reviewer else None,
        **video,
    }
