"""Upload rate limits per user and per client address (django-ratelimit on the cache)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited

from deepfake_site.throttling import rate_in_words


def upload_rate_exceeded(request: HttpRequest) -> bool:
    """Count this upload attempt; True when the user or the address is over its limit."""
    over_user_limit = is_ratelimited(
        request,
        group="uploads-per-user",
        key="user_or_ip",
        rate=settings.UPLOAD_RATE_PER_USER,
        increment=True,
    )
    over_address_limit = is_ratelimited(
        request,
        group="uploads-per-ip",
        key="ip",
        rate=settings.UPLOAD_RATE_PER_IP,
        increment=True,
    )
    return bool(over_user_limit or over_address_limit)


def rate_limited_message() -> str:
    return (
        f"Too many uploads. Each account may send {rate_in_words(settings.UPLOAD_RATE_PER_USER)}"
        " and each network address "
        f"{rate_in_words(settings.UPLOAD_RATE_PER_IP)}; please wait a minute and try again."
    )
