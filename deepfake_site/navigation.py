"""The main navigation: each entry shows only to users who may open it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django.urls import reverse

from moderation.rules import user_is_reviewer

UserLike = User | AnonymousUser


@dataclass(frozen=True)
class NavEntry:
    url_name: str
    label: str
    description: str
    visible_to: Callable[[UserLike], bool]


def _signed_in(user: UserLike) -> bool:
    return bool(user.is_authenticated)


def _staff(user: UserLike) -> bool:
    return bool(user.is_authenticated and user.is_staff)


NAV_ENTRIES = (
    NavEntry("detection:upload", "Upload", "Send a photo for analysis.", _signed_in),
    NavEntry(
        "detection:submission-list", "My submissions", "Your uploads and results.", _signed_in
    ),
    NavEntry(
        "moderation:queue",
        "Moderation queue",
        "Review flagged photos, decide, and audit decisions.",
        lambda user: user_is_reviewer(user=user),
    ),
    NavEntry(
        "detection:model-card",
        "Model",
        "What the classifier is, its measurements and its limits.",
        _signed_in,
    ),
    NavEntry("admin:index", "Admin", "Users, roles, submissions and re-runs.", _staff),
)


def nav_items(request: HttpRequest) -> dict[str, list[dict[str, object]]]:
    items = []
    for entry in NAV_ENTRIES:
        if not entry.visible_to(request.user):
            continue
        url = reverse(entry.url_name)
        items.append(
            {
                "url": url,
                "label": entry.label,
                "description": entry.description,
                "active": request.path.startswith(url),
            }
        )
    return {"nav_items": items}
