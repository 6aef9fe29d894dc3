"""Display helpers for moderation pages."""

from __future__ import annotations

from datetime import timedelta

from django import template

from moderation.models import ReviewCase, ReviewEvent

register = template.Library()

# The site's badge colours: red for manipulated, green for authentic, amber for staff.
_STATE_BADGES = {
    ReviewCase.State.PENDING: "pending",
    ReviewCase.State.ESCALATED: "uncertain",
    ReviewCase.State.CONFIRMED: "fake",
    ReviewCase.State.CLEARED: "real",
}
_EVENT_BADGES = {
    ReviewEvent.Kind.CONFIRMED: "fake",
    ReviewEvent.Kind.CLEARED: "real",
    ReviewEvent.Kind.ESCALATED: "uncertain",
}


@register.filter
def state_badge(state: str) -> str:
    return _STATE_BADGES.get(ReviewCase.State(state), "pending")


@register.filter
def event_badge(kind: str) -> str:
    return _EVENT_BADGES.get(ReviewEvent.Kind(kind), "pending")


@register.filter
def duration(value: timedelta | None) -> str:
    """A short human duration: '3 d 4 h', '2 h 5 min', '45 s'."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@register.filter
def percent(value: float | None) -> str:
    """A share as a whole percentage ('12 %'), with a decimal under 10 % ('2.5 %')."""
    if value is None:
        return "-"
    shown = 100 * value
    return f"{shown:.1f} %" if 0 < shown < 10 else f"{shown:.0f} %"
