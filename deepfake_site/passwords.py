"""What a new password does beyond itself: it revokes the account's API tokens."""

from __future__ import annotations

from django.contrib.auth.models import User

from deepfake_site.services import api_tokens_revoke


class RevokeApiTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS but refuses nothing.

    Django calls `password_changed` on every entry of that list whenever a user is saved with
    a new password: the password-change page, the admin's "change password" form (how an
    administrator resets a forgotten password), `manage.py changepassword`, the commands that
    set passwords. So this is the one hook that sees every change: someone who changes a
    password because it leaked also shuts out API clients holding a token made with it.
    """

    def validate(self, password: str, user: User | None = None) -> None:
        return None

    def password_changed(self, password: str, user: User | None = None) -> None:
        if user is not None and user.pk is not None:
            api_tokens_revoke(user=user)

    def get_help_text(self) -> str:
        return "Changing your password later revokes your API tokens."
