"""The one way in for an upload, shared by the web form and the API.

Every upload passes the same checks in the same order: a body with a length, the rate
limits, the byte limit (enforced while the body streams in), a file at all, then in
`services.upload_create` the duplicate check, the limit on uploads in flight, the
validation and storage. A request may carry several files (UPLOAD_MAX_FILES), photos or
videos: each one passes the per-file checks on its own, rate limits included, and gets its
own outcome. Each refusal carries a machine code (which sets the HTTP status), a message for
people and, for passing reasons, when to try again; nothing is stored for a refused file.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from detection import services
from detection.throttling import RateLimitUnavailable, rate_limited_message, upload_rate_wait
from detection.uploads import (
    LENGTH_REQUIRED_MESSAGE,
    body_length_missing,
    files_received,
    too_large_for_any_message,
)
from detection.validation import RejectionCode, UploadRejected

# The form field of photos and videos; API clients may also name a clip's part `video`.
UPLOAD_FIELD = "image"
VIDEO_FIELD = "video"
UPLOAD_FIELDS = (UPLOAD_FIELD, VIDEO_FIELD)


# A refusal for a passing reason says when to come back.
UNAVAILABLE_RETRY_SECONDS = 30
_STATUS = {
    RejectionCode.LENGTH_REQUIRED: 411,
    RejectionCode.FILE_TOO_LARGE: 413,
    RejectionCode.RATE_LIMITED: 429,
    RejectionCode.TOO_MANY_IN_FLIGHT: 429,
    RejectionCode.STORAGE_UNAVAILABLE: 503,
    RejectionCode.SERVICE_UNAVAILABLE: 503,
}


@dataclass(frozen=True)
class UploadRefused(Exception):
    code: RejectionCode
    message: str
    retry_after: int | None = None  # seconds, for the Retry-After header

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 400)


@dataclass(frozen=True)
class FileOutcome:
    """One file of the request: stored (or found again), or refused and why."""

    filename: str
    accepted: services.SubmissionCreated | None = None
    refusal: UploadRefused | None = None


def uploads_accept(request: HttpRequest, *, user: User) -> list[FileOutcome]:
    """Every photo and video in the request's `image` and `video` parts, in the order sent,
    each with its outcome.

    Raises UploadRefused when the request as a whole is refused: no length, over the rate
    limits before anything is read, a body Django will not parse, or no file at all.
    """
    if body_length_missing(request):
        raise UploadRefused(RejectionCode.LENGTH_REQUIRED, LENGTH_REQUIRED_MESSAGE)
    # The first photo is counted before the body is read: a client over its limits costs
    # no parsing.
    refusal = _rate_refusal(request)
    if refusal is not None:
        raise refusal
    try:
        # Reading FILES parses the body through the handler.
        kept = {field: iter(request.FILES.getlist(field)) for field in UPLOAD_FIELDS}
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as error:
        raise UploadRefused(RejectionCode.REQUEST_TOO_LARGE, str(error)) from None
    except MultiPartParserError:
        message = "The request body is not a well-formed multipart form."
        raise UploadRefused(RejectionCode.MALFORMED_REQUEST, message) from None
    # A text value where a file belongs is a client bug: refusing it says so, where skipping
    # it would store the other parts as if the request were what the client meant.
    text_parts = [field for field in UPLOAD_FIELDS if field in request.POST]
    if text_parts:
        message = f"The “{text_parts[0]}” part must be a file, not a text value."
        raise UploadRefused(RejectionCode.MALFORMED_REQUEST, message)
    received = [part for part in files_received(request) if part.field_name in UPLOAD_FIELDS]
    if not received:
        raise UploadRefused(RejectionCode.MISSING_IMAGE, "Choose a photo or a video to upload.")
    outcomes = []
    for position, part in enumerate(received):
        if part.too_large:
            refused = UploadRefused(RejectionCode.FILE_TOO_LARGE, too_large_for_any_message())
            outcomes.append(FileOutcome(part.name, refusal=refused))
            continue
        uploaded = next(kept[part.field_name], None)
        if uploaded is None:  # a part the upload handlers kept no file for
            refused = UploadRefused(RejectionCode.MISSING_IMAGE, "The file could not be read.")
            outcomes.append(FileOutcome(part.name, refusal=refused))
            continue
        refusal = _rate_refusal(request) if position > 0 else None
        if refusal is not None:
            outcomes.append(FileOutcome(part.name, refusal=refusal))
            continue
        outcomes.append(_accept_one(uploaded, user=user))
    return outcomes


def _rate_refusal(request: HttpRequest) -> UploadRefused | None:
    """Count one photo against the rate limits; the refusal when it is over them."""
    try:
        wait = upload_rate_wait(request)
    except RateLimitUnavailable:
        # Without its counters the service cannot bound abuse, so it pauses uploads rather
        # than take them unlimited.
        message = "Uploads are paused for a moment; please try again shortly."
        return UploadRefused(RejectionCode.SERVICE_UNAVAILABLE, message, UNAVAILABLE_RETRY_SECONDS)
    if wait is not None:
        return UploadRefused(RejectionCode.RATE_LIMITED, rate_limited_message(), wait)
    return None


def _accept_one(uploaded: UploadedFile, *, user: User) -> FileOutcome:
    filename = uploaded.name or ""
    try:
        created = services.upload_create(uploader=user, upload=uploaded, filename=filename)
    except UploadRejected as rejection:
        return FileOutcome(filename, refusal=UploadRefused(rejection.code, rejection.message))
    except services.StorageUnavailable:
        message = "The upload could not be stored just now; nothing was kept. Please try again."
        refused = UploadRefused(
            RejectionCode.STORAGE_UNAVAILABLE, message, UNAVAILABLE_RETRY_SECONDS
        )
        return FileOutcome(filename, refusal=refused)
    return FileOutcome(filename, accepted=created)
