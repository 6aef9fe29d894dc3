"""Account reads: API tokens."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken


def api_token_get_current(*, user: User) -> AuthToken | None:
    """The user's newest token that has not expired (knox deletes expired ones lazily)."""
    unexpired = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    token: AuthToken | None = (
        AuthToken.objects.filter(unexpired, user=user).order_by("-created").first()
    )
    return token
