from __future__ import annotations

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoints, name="endpoints"),
    path("<uuid:endpoint_id>/", views.endpoint_detail, name="endpoint-detail"),
    path("<uuid:endpoint_id>/delete/", views.endpoint_delete, name="endpoint-delete"),
    path(
        "<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/resend/",
        views.delivery_resend,
        name="delivery-resend",
    ),
]
