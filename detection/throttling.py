"""Upload rate limits per user and per client address (django-ratelimit on the cache)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from redis import RedisError

from deepfake_site.throttling import rate_in_words


class RateLimitUnavailable(Exception):
    """The counters live in the cache, and the cache cannot be reached."""


def upload_rate_wait(request: HttpRequest) -> int | None:
    """Count this upload attempt: None while the user and the address are within their
    limits, else the seconds until the fuller window starts again (for Retry-After)."""
    if not settings.RATELIMIT_ENABLE:
        return None
    limits = (
        ("uploads-per-user", "user_or_ip", settings.UPLOAD_RATE_PER_USER),
        ("uploads-per-ip", "ip", settings.UPLOAD_RATE_PER_IP),
    )
    try:
        usages = [
            get_usage(request, group=group, key=key, rate=rate, increment=True)
            for group, key, rate in limits
        ]
    except (RedisError, OSError) as error:
        raise RateLimitUnavailable(str(error)) from error
    waits = [max(1, usage["time_left"]) for usage in usages if usage and usage["should_limit"]]
    return max(waits) if waits else None


def rate_limited_message() -> str:
    return (
        f"Too many uploads. Each account may send {rate_in_words(settings.UPLOAD_RATE_PER_USER)}"
        " and each network address "
        f"{rate_in_words(settings.UPLOAD_RATE_PER_IP)}; please wait a minute and try again."
    )
