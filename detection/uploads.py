"""An upload handler that stops reading a file as soon as it passes the byte limit."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest


def streamed_upload_limit() -> int:
    """What may stream in before the upload's kind is known: the larger of the two limits."""
    return max(settings.UPLOAD_MAX_BYTES, settings.VIDEO_MAX_BYTES)


def too_large_for_any_message() -> str:
    return (
        f"The file is larger than the {settings.VIDEO_MAX_BYTES / 1_000_000:g} MB limit for "
        f"videos ({settings.UPLOAD_MAX_BYTES / 1_000_000:g} MB for photos)."
    )


class LimitedUploadHandler(FileUploadHandler):
    """Counts file bytes as they stream in and aborts the upload past the streamed limit.

    It works without a Content-Length header (chunked bodies), and marks the request so the
    view can answer with a clear message instead of a bare missing-file error.
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0

    def new_file(self, *args: object, **kwargs: object) -> None:
        super().new_file(*args, **kwargs)  # type: ignore[arg-type]
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > streamed_upload_limit():
            self.request.upload_too_large = True  # type: ignore[union-attr]
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_was_too_large(request: object) -> bool:
    return bool(getattr(request, "upload_too_large", False))


def body_length_missing(request: HttpRequest) -> bool:
    """A body sent without Content-Length (chunked) cannot be parsed by Django: WSGI reads
    it as empty, and the uploader would be told to choose a file they did send."""
    has_body = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return has_body and not request.META.get("CONTENT_LENGTH")


LENGTH_REQUIRED_MESSAGE = (
    "Send the upload with a Content-Length header (chunked bodies are not accepted)."
)
