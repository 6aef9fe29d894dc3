"""Admin for webhooks: staff see every account's endpoints and deliveries, never a secret.

Endpoints change through their owners' settings page or the API; here staff can only turn
one off (or on again) and look at what was sent.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from webhooks import services
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "owner", "events", "is_active", "consecutive_failures", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "owner__username")
    list_select_related = ("owner",)
    # The secret is absent on purpose: it is shown to the owner once, and to nobody else.
    fields = readonly_fields = (
        "id",
        "owner",
        "url",
        "events",
        "is_active",
        "created_at",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
    )
    actions = ["turn_off", "turn_on"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Turn the selected endpoints off")
    def turn_off(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            services.webhook_endpoint_update(endpoint=endpoint, is_active=False)

    @admin.action(description="Turn the selected endpoints on (clears their failures)")
    def turn_on(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            services.webhook_endpoint_update(endpoint=endpoint, is_active=True)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "sent_at", "response_status", "latency_ms", "error")

    def has_add_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "latency_ms",
        "next_attempt_at",
    )
    list_filter = ("status", "event")
    search_fields = ("=id", "=event_id", "endpoint__url", "endpoint__owner__username")
    list_select_related = ("endpoint",)
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "id",
        "endpoint",
        "event",
        "event_id",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "response_status",
        "latency_ms",
        "error",
        "resent_from",
        "body",
    )
    inlines = [WebhookAttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
