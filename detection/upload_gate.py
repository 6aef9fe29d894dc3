"""The one way in for an upload, shared by the web form and the API.

Every upload passes the same checks in the same order: a body with a length, the rate
limits, the byte limit (enforced while the body streams in), a file at all, then in
`services.submission_create` the duplicate check, the limit on uploads in flight, the
validation and storage. Each refusal carries a machine code (which sets the HTTP status), a
message for people and, for passing reasons, when to try again; nothing is stored for a
refused upload.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest

from detection import services
from detection.throttling import RateLimitUnavailable, rate_limited_message, upload_rate_wait
from detection.uploads import (
    LENGTH_REQUIRED_MESSAGE,
    body_length_missing,
    too_large_for_any_message,
    upload_was_too_large,
)
from detection.validation import RejectionCode, UploadRejected

# The form field of the photo or video; API clients may also name a clip `video`.
UPLOAD_FIELD = "image"
VIDEO_FIELD = "video"


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


def upload_accept(request: HttpRequest, *, user: User) -> services.SubmissionCreated:
    """Accept the photo or video in the request's `image` field, or raise UploadRefused."""
    if body_length_missing(request):
        raise UploadRefused(RejectionCode.LENGTH_REQUIRED, LENGTH_REQUIRED_MESSAGE)
    try:
        wait = upload_rate_wait(request)
    except RateLimitUnavailable:
        # Without its counters the service cannot bound abuse, so it pauses uploads rather
        # than take them unlimited.
        message = "Uploads are paused for a moment; please try again shortly."
        raise UploadRefused(
            RejectionCode.SERVICE_UNAVAILABLE, message, UNAVAILABLE_RETRY_SECONDS
        ) from None
    if wait is not None:
        raise UploadRefused(RejectionCode.RATE_LIMITED, rate_limited_message(), wait)
    try:
        # Parsing the body runs it through the upload handler.
        uploaded = request.FILES.get(UPLOAD_FIELD) or request.FILES.get(VIDEO_FIELD)
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as error:
        raise UploadRefused(RejectionCode.REQUEST_TOO_LARGE, str(error)) from None
    if upload_was_too_large(request):
        raise UploadRefused(RejectionCode.FILE_TOO_LARGE, too_large_for_any_message())
    if uploaded is None:
        raise UploadRefused(RejectionCode.MISSING_IMAGE, "Choose a photo or a video to upload.")
    try:
        return services.upload_create(uploader=user, upload=uploaded, filename=uploaded.name or "")
    except UploadRejected as rejection:
        raise UploadRefused(rejection.code, rejection.message) from None
    except services.StorageUnavailable:
        message = "The upload could not be stored just now; nothing was kept. Please try again."
        raise UploadRefused(
            RejectionCode.STORAGE_UNAVAILABLE, message, UNAVAILABLE_RETRY_SECONDS
        ) from None
