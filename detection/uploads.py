"""An upload handler that drops a file as soon as it passes the byte limit."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest


def streamed_upload_limit() -> int:
    """What may stream in before the upload's kind is known: the larger of the two limits."""
    return max(settings.UPLOAD_MAX_BYTES, settings.VIDEO_MAX_BYTES)


def too_large_for_any_message() -> str:
    return (
        f"The file is larger than the {settings.VIDEO_MAX_BYTES / 1_000_000:g} MB limit for "
        f"videos ({settings.UPLOAD_MAX_BYTES / 1_000_000:g} MB for photos)."
    )


@dataclass
class ReceivedFile:
    """A file part of the request, in the order sent, whether it was kept or dropped."""

    field_name: str
    name: str
    too_large: bool = False


class LimitedUploadHandler(FileUploadHandler):
    """Counts file bytes as they stream in and drops a file past the streamed limit (the
    larger of the photo and video limits: the kind is known only once the file is in).

    It works without a Content-Length header (chunked bodies). A dropped file's bytes are
    read and discarded, and the files after it are still read, so that each photo of a
    batch gets its own answer; the request lists every file part it saw (`files_received`)
    so the gate can say which one was too large instead of a bare missing-file error.
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0

    def new_file(self, field_name: str, file_name: str, *args: object, **kwargs: object) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)  # type: ignore[arg-type]
        self.received = 0
        files_received(self.request).append(ReceivedFile(field_name, file_name))

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > streamed_upload_limit():
            files_received(self.request)[-1].too_large = True
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def files_received(request: object) -> list[ReceivedFile]:
    """The file parts LimitedUploadHandler saw in this request (empty before parsing)."""
    if not hasattr(request, "files_received"):
        request.files_received = []  # type: ignore[attr-defined]
    received: list[ReceivedFile] = request.files_received  # type: ignore[attr-defined]
    return received


def body_length_missing(request: HttpRequest) -> bool:
    """A body sent without Content-Length (chunked) cannot be parsed by Django: WSGI reads
    it as empty, and the uploader would be told to choose a file they did send."""
    has_body = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return has_body and not request.META.get("CONTENT_LENGTH")


LENGTH_REQUIRED_MESSAGE = (
    "Send the upload with a Content-Length header (chunked bodies are not accepted)."
)
