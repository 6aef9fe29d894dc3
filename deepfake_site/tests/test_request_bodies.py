"""A request refused before its body was read is still read to the end, so that the proxy in
front (which is still sending that body) passes the refusal on instead of a 502.

Through real nginx and gunicorn: test_slow_clients.py sends a 100 MB body that Django refuses.
"""

from __future__ import annotations

import io

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import RequestFactory

from deepfake_site.middleware import DRAIN_CHUNK_BYTES, unread_request_body_drained

# More than one chunk, less than DATA_UPLOAD_MAX_MEMORY_SIZE (which request.body enforces).
BODY = b"x" * (2 * DRAIN_CHUNK_BYTES + 5)


def refuse_unread(request: HttpRequest) -> HttpResponseBase:
    return HttpResponse("refused", status=403)


def upload() -> HttpRequest:
    return RequestFactory().post("/upload/", data=BODY, content_type="application/octet-stream")


def test_a_refusal_made_without_reading_the_body_reads_it_to_the_end() -> None:
    request = upload()
    response = unread_request_body_drained(refuse_unread)(request)
    assert response.status_code == 403
    assert request.read(1) == b""


def test_a_body_the_view_already_read_is_left_as_the_view_saw_it() -> None:
    def echo(request: HttpRequest) -> HttpResponseBase:
        return HttpResponse(request.body[:3])

    request = upload()
    response = unread_request_body_drained(echo)(request)
    assert isinstance(response, HttpResponse)
    assert response.content == b"xxx"
    assert request.body == BODY


class GoneClient(io.RawIOBase):
    """A body whose sender disconnected halfway."""

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise ConnectionResetError("connection reset by peer")

    def readable(self) -> bool:
        return True


def test_a_client_that_left_mid_body_still_gets_its_response() -> None:
    request = RequestFactory().post("/upload/", data=b"", content_type="text/plain")
    request._stream = io.BufferedReader(GoneClient())
    response = unread_request_body_drained(refuse_unread)(request)
    assert response.status_code == 403
