"""The one way in for an upload, shared by the web form and the API.

Every upload passes the same checks in the same order: a body with a length, the rate
limits, the byte limit (enforced while the body streams in), a file at all, then in
`services.submission_create` the duplicate check, the limit on uploads in flight, the
validation and storage. Each refusal carries the HTTP status, a machine code and a message
for people; nothing is stored for a refused upload.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest

from detection import services
from detection.throttling import rate_limited_message, upload_rate_exceeded
from detection.uploads import LENGTH_REQUIRED_MESSAGE, body_length_missing, upload_was_too_large
from detection.validation import RejectionCode, UploadRejected, too_large_message

UPLOAD_FIELD = "image"


@dataclass(frozen=True)
class UploadRefused(Exception):
    status: int
    code: RejectionCode
    message: str


def upload_accept(request: HttpRequest, *, user: User) -> services.SubmissionCreated:
    """Accept the photo in the request's `image` field, or raise UploadRefused."""
    if body_length_missing(request):
        raise UploadRefused(411, RejectionCode.LENGTH_REQUIRED, LENGTH_REQUIRED_MESSAGE)
    if upload_rate_exceeded(request):
        raise UploadRefused(429, RejectionCode.RATE_LIMITED, rate_limited_message())
    uploaded = request.FILES.get(UPLOAD_FIELD)  # parses the body through the upload handler
    if upload_was_too_large(request):
        message = too_large_message(settings.UPLOAD_MAX_BYTES)
        raise UploadRefused(400, RejectionCode.FILE_TOO_LARGE, message)
    if uploaded is None:
        raise UploadRefused(400, RejectionCode.MISSING_IMAGE, "Choose a photo to upload.")
    try:
        return services.submission_create(
            uploader=user, data=uploaded.read(), filename=uploaded.name or ""
        )
    except UploadRejected as rejection:
        status = 429 if rejection.code is RejectionCode.TOO_MANY_IN_FLIGHT else 400
        raise UploadRefused(status, rejection.code, rejection.message) from None
