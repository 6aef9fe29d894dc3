"""Site-wide response policy that no single view should have to remember."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

Handler = Callable[[HttpRequest], HttpResponseBase]


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
