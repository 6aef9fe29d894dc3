"""Request types the views share."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    """What a view behind a sign-in check (login_required, reviewer_required) receives."""

    user: User
