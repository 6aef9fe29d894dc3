"""Account writes: API tokens."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from knox.models import AuthToken


def api_token_rotate(*, user: User) -> str:
    """Replace the user's tokens with a new one and return its key, which is kept nowhere:
    the database holds only its hash and first characters."""
    # The user's own database: the load test makes its clients' tokens in another one.
    database = user._state.db
    with transaction.atomic(using=database):
        api_tokens_revoke(user=user)
        _, key = AuthToken.objects.db_manager(database).create(
            user=user, expiry=timedelta(days=settings.API_TOKEN_TTL_DAYS)
        )
    return str(key)


def api_tokens_revoke(*, user: User) -> int:
    """Delete every token of the user; API clients using them get 401 from now on."""
    deleted, _ = AuthToken.objects.db_manager(user._state.db).filter(user=user).delete()
    return int(deleted)
