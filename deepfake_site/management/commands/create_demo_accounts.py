"""Create the three demo accounts `make run` prints: an uploader, a moderator and an admin.

Each run gives every demo account a fresh random password (or DEMO_PASSWORD when it is
set) and prints it, so the printed credentials always work.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

DEMO_ACCOUNTS = (
    ("uploader", "an uploader"),
    ("moderator", "a moderator"),
    ("admin", "an administrator"),
)


class Command(BaseCommand):
    help = "Create or refresh the demo uploader, moderator and admin accounts."

    def handle(self, *args: Any, **options: Any) -> None:
        moderators = Group.objects.get(name=settings.MODERATORS_GROUP)
        self.stdout.write("Demo accounts (user / password):")
        for username, role in DEMO_ACCOUNTS:
            password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
            # No e-mail address: an address is one account's, and a visitor who signed up
            # with uploader@example.com must not stop the demo accounts from being made.
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = user.is_superuser = username == "admin"
            user.save()
            if username == "moderator":
                user.groups.add(moderators)
            self.stdout.write(f"  {username:<10} {password:<16} {role}")
