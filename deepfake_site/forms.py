from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.forms import PasswordChangeForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from deepfake_site.selectors import user_email_taken


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        if email and user_email_taken(email=email):
            raise ValidationError(
                "An account with this e-mail address already exists.", code="email_taken"
            )
        return email


class CountedPasswordChangeForm(PasswordChangeForm):
    """The old password is checked the way a log-in checks one, through `authenticate`: so
    django-axes counts a wrong one as a failed log-in and refuses a locked-out account, and a
    stolen session cannot be used to guess the password without limit."""

    def __init__(self, user: User, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    @sensitive_variables("old_password")
    def clean_old_password(self) -> str:
        old_password: str = self.cleaned_data["old_password"]
        authenticated = authenticate(
            self.request, username=self.user.get_username(), password=old_password
        )
        if authenticated is None or authenticated.pk != self.user.pk:
            raise ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password
