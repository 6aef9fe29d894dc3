"""Account reads: e-mail addresses in use, API tokens."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken


def user_email_taken(*, email: str, except_user: User | None = None) -> bool:
    """Whether an account other than `except_user` has this address, in any case (the
    database refuses a second one: see migration deepfake_site 0002)."""
    others = User.objects.filter(email__iexact=email)
    if except_user is not None:
        others = others.exclude(pk=except_user.pk)
    return others.exists()


def api_token_get_current(*, user: User) -> AuthToken | None:
    """The user's newest token that has not expired (knox deletes expired ones lazily)."""
    unexpired = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    token: AuthToken | None = (
        AuthToken.objects.filter(unexpired, user=user).order_by("-created").first()
    )
    return token
