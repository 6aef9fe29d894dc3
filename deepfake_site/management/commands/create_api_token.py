"""Give an account a new API token from the command line and print its key, once.

For operators setting up an integration without signing in as its account; like the token
page, it replaces the account's earlier tokens.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deepfake_site.services import api_token_rotate


class Command(BaseCommand):
    help = "Create (or rotate) a user's API token and print its key; it is not shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        key = api_token_rotate(user=user)
        self.stdout.write(f"API token for {user.username} (it is not shown again): {key}")
