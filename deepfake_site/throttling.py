"""Sign-up rate limit per client address (django-ratelimit on the cache), and rates in words."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited


def signup_rate_exceeded(request: HttpRequest) -> bool:
    """Count this sign-up attempt; True when its address is over the limit."""
    return bool(
        is_ratelimited(
            request,
            group="signups-per-ip",
            key="ip",
            rate=settings.SIGNUP_RATE_PER_IP,
            increment=True,
        )
    )


def signup_rate_limited_message() -> str:
    return (
        "Too many sign-ups from your network address "
        f"(at most {rate_in_words(settings.SIGNUP_RATE_PER_IP)}); please try again later."
    )


def rate_in_words(rate: str) -> str:
    """A django-ratelimit rate such as "30/m" as people say it: "30 per minute"."""
    count, _, period = rate.partition("/")
    unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(period[-1:], period)
    return f"{count} per {unit}"
