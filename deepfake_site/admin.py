"""API tokens in the admin: listed by the first characters of their key, never the hash."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from knox.models import AuthToken

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
