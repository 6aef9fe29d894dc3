"""Site-wide response policy that no single view should have to remember."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase, UnreadablePostError
from django.utils.cache import add_never_cache_headers

Handler = Callable[[HttpRequest], HttpResponseBase]

DRAIN_CHUNK_BYTES = 1 << 20


def unread_request_body_drained(get_response: Handler) -> Handler:
    """A request refused before its body was read is still read to the end before answering.

    CSRF, rate limits, lock-outs and the upload gate's header checks answer without touching
    the body. Gunicorn then closes the connection with the body unread, the kernel resets it,
    and nginx, still passing on the buffered body of a large upload, answers 502 Bad Gateway
    in place of the refusal the user should see (it happened under load). What is left is at
    most Content-Length bytes, which nginx caps at client_max_body_size and sends from its
    own buffer, so reading it costs a moment, not a slow client's minutes.
    """

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        # A client that left mid-body has nobody to answer; its response is dropped anyway.
        with contextlib.suppress(UnreadablePostError):
            while request.read(DRAIN_CHUNK_BYTES):
                pass
        return response

    return middleware


def private_responses_not_stored(get_response: Handler) -> Handler:
    """Nothing answered to a signed-in user is stored by a browser or a proxy.

    The API token page shows a key; result, queue and case pages show people's faces and
    moderators' notes. Stored, they come back through the back button or the cache of a
    shared computer after log-out. A response that sets its own Cache-Control keeps it: the
    media views let the user's own browser keep images for an hour, privately.
    """

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if request.user.is_authenticated and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response

    return middleware
