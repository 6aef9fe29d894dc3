"""Request types the views share, and the client address behind proxies."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    """What a view behind a sign-in check (login_required, reviewer_required) receives."""

    user: User


def client_address(request: HttpRequest) -> str:
    """The client's network address, for lockouts and per-address rate limits.

    Each of the PROXY_COUNT proxies appends the address it got the request from to
    X-Forwarded-For, so the client is that many entries from the right; anything further
    left came from the client and could be anything. A shorter header means a request that
    did not come through every proxy: it is counted against the nearest sender, which
    cannot be forged.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if settings.PROXY_COUNT <= 0:
        return remote
    forwarded = [
        entry.strip()
        for entry in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if entry.strip()
    ]
    if len(forwarded) < settings.PROXY_COUNT:
        return remote
    return forwarded[-settings.PROXY_COUNT]
