"""Accounts in the admin: one account per e-mail address, and API tokens listed by the first
characters of their key."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from knox.models import AuthToken

from deepfake_site.selectors import user_email_taken


class OneAccountPerEmailChangeForm(UserChangeForm):
    """The database refuses a second account with one address; say so instead of a 500."""

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        if email and user_email_taken(email=email, except_user=self.instance):
            raise ValidationError(
                "An account with this e-mail address already exists.", code="email_taken"
            )
        return email


admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    form = OneAccountPerEmailChangeForm


# knox's own admin lists the digest and can create tokens, showing their key in a message.
admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "user", "created", "expiry")
    list_select_related = ("user",)
    search_fields = ("token_key", "user__username")
    ordering = ("-created",)
    # Tokens are made on the user's token page; here they can only be seen and revoked.
    readonly_fields = ("key_prefix", "user", "created", "expiry")
    fields = readonly_fields

    @admin.display(description="key starts with")
    def key_prefix(self, token: AuthToken) -> str:
        return f"{token.token_key}…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuthToken | None = None) -> bool:
        return False
