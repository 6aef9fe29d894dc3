"""Create or update the first administrator from DJANGO_SUPERUSER_* variables.

Unlike `createsuperuser --noinput` it can run at every start (docker compose does): an
existing account gets its password and staff flags refreshed instead of an error.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from deepfake_site.selectors import user_email_taken


class Command(BaseCommand):
    help = "Create or update a superuser from DJANGO_SUPERUSER_USERNAME/PASSWORD/EMAIL."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if not username or not password:
            raise CommandError(
                "Set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD to create the admin."
            )
        user = User.objects.filter(username=username).first()
        if email and user_email_taken(email=email, except_user=user):
            raise CommandError(
                f"The e-mail address {email!r} already belongs to another account; "
                "set DJANGO_SUPERUSER_EMAIL to another one, or leave it empty."
            )
        created = user is None
        if user is None:
            user = User(username=username)
        user.is_staff = user.is_superuser = user.is_active = True
        if email:
            user.email = email
        # Only a new password is set: setting one revokes the account's API tokens, and this
        # runs at every start of the web container.
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} superuser {username!r}.")
