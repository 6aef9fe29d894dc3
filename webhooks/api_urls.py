from __future__ import annotations

from django.urls import path

from webhooks import api

urlpatterns = [
    path("webhooks/", api.EndpointListCreate.as_view(), name="webhook-list"),
    path("webhooks/<uuid:endpoint_id>/", api.EndpointDetail.as_view(), name="webhook-detail"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/",
        api.DeliveryList.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/resend/",
        api.DeliveryResend.as_view(),
        name="webhook-delivery-resend",
    ),
]
