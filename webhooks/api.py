"""The webhooks API: an account's endpoints, their deliveries, and re-sending one.

Views parse input and call the same services as the settings page.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deepfake_site.api import Conflict, invalid_input
from webhooks import selectors, services
from webhooks.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    url = serializers.URLField(help_text="Where deliveries are POSTed.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices))
    deliveries_url = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "events",
            "is_active",
            "created_at",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "deliveries_url",
        )
        extra_kwargs = {
            "consecutive_failures": {
                "help_text": "Deliveries in a row that failed every attempt; a success resets it."
            },
            "disabled_reason": {
                "help_text": "Why the service turned the endpoint off (empty otherwise)."
            },
        }

    def get_deliveries_url(self, endpoint: WebhookEndpoint) -> str:
        path = reverse("api:webhook-deliveries", kwargs={"endpoint_id": endpoint.id})
        return self.context["request"].build_absolute_uri(path)


class CreatedEndpointSerializer(EndpointSerializer):
    secret = serializers.CharField(
        help_text="Signs every delivery (X-Faceproof-Signature). Shown only now: keep it."
    )

    class Meta(EndpointSerializer.Meta):
        fields: tuple[str, ...] = (*EndpointSerializer.Meta.fields, "secret")


class EndpointInputSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=2000, help_text="An http(s) URL on a public address.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices),
        allow_empty=False,
        help_text="The events to receive.",
    )


class EndpointChangeSerializer(EndpointInputSerializer):
    is_active = serializers.BooleanField(
        required=False, help_text="Off stops deliveries; on again clears the failure count."
    )


class AttemptSerializer(serializers.ModelSerializer[WebhookAttempt]):
    class Meta:
        model = WebhookAttempt
        fields = ("number", "sent_at", "response_status", "latency_ms", "error")


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
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
            "attempt_log",
        )
        extra_kwargs = {
            "id": {"help_text": "The X-Faceproof-Delivery header of its requests."},
            "event_id": {"help_text": "The same for every delivery of one event (re-sends)."},
            "next_attempt_at": {"help_text": "When the next attempt goes out, while pending."},
        }


def _endpoint(request: Request, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = selectors.webhook_endpoint_get_for_user(
        endpoint_id=endpoint_id,
        user=request.user,  # type: ignore[arg-type]
    )
    if endpoint is None:
        raise Http404
    return endpoint


class EndpointListCreate(generics.ListCreateAPIView[WebhookEndpoint]):
    serializer_class = EndpointSerializer
    parser_classes = [JSONParser]

    def get_queryset(self) -> Any:
        return selectors.webhook_endpoints_for_user(user=self.request.user)  # type: ignore[arg-type]

    @extend_schema(
        summary="List your webhook endpoints",
        description="Every endpoint of your account, with whether it is on and, when the "
        "service turned it off after repeated failures, why.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Register a webhook endpoint",
        description="The service POSTs each chosen event about your uploads to `url`, signed "
        "with the `secret` this answer holds (and no other answer will). The URL must be "
        "http(s) on a public address.",
        request=EndpointInputSerializer,
        responses={201: OpenApiResponse(CreatedEndpointSerializer, "Registered.")},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given = EndpointInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            endpoint = services.webhook_endpoint_create(
                owner=request.user,  # type: ignore[arg-type]
                url=given.validated_data["url"],
                events=given.validated_data["events"],
            )
        except ValidationError as error:
            raise invalid_input(error) from None
        body = CreatedEndpointSerializer(endpoint, context=self.get_serializer_context()).data
        location = reverse("api:webhook-detail", kwargs={"endpoint_id": endpoint.id})
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class EndpointDetail(generics.RetrieveUpdateDestroyAPIView[WebhookEndpoint]):
    serializer_class = EndpointSerializer
    parser_classes = [JSONParser]
    # PATCH changes what it is given; a PUT would only say the same less kindly.
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> WebhookEndpoint:
        return _endpoint(self.request, self.kwargs["endpoint_id"])

    @extend_schema(
        summary="Read one webhook endpoint",
        description="Its URL and events, whether it is on, its failures in a row and, when "
        "the service turned it off, why.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Change a webhook endpoint",
        description="Change its `url`, its `events`, or turn it off and on (`is_active`). "
        "Turning on an endpoint the service turned off clears its failure count.",
        request=EndpointChangeSerializer(partial=True),
        responses={200: EndpointSerializer},
    )
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        given = EndpointChangeSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        try:
            services.webhook_endpoint_update(endpoint=endpoint, **given.validated_data)
        except ValidationError as error:
            raise invalid_input(error) from None
        return Response(self.get_serializer(endpoint).data)

    @extend_schema(
        summary="Delete a webhook endpoint",
        description="It receives nothing more; its delivery records go with it.",
    )
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.webhook_endpoint_delete(endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    summary="List an endpoint's deliveries",
    description="Newest first: each event sent, its status, every attempt's answer and "
    "latency, and when the next attempt goes out. Records are kept "
    "WEBHOOK_DELIVERY_RETENTION_DAYS days.",
)
class DeliveryList(generics.ListAPIView[WebhookDelivery]):
    serializer_class = DeliverySerializer

    def get_queryset(self) -> Any:
        endpoint = _endpoint(self.request, self.kwargs["endpoint_id"])
        return selectors.webhook_deliveries_for_endpoint(endpoint=endpoint)


class DeliveryResend(APIView):
    error_statuses = (409,)

    @extend_schema(
        summary="Re-send a delivery",
        description="The same event with the same body, as a new delivery with its own id and "
        "attempts (the payload's `id`, the event id, stays the same). The endpoint must be on.",
        request=None,
        responses={202: OpenApiResponse(DeliverySerializer, "Queued to be sent.")},
    )
    def post(self, request: Request, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        delivery = selectors.webhook_delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        if delivery is None:
            raise Http404
        try:
            resent = services.webhook_delivery_resend(delivery=delivery)
        except ValidationError as error:
            raise Conflict(" ".join(error.messages), code=error.code) from None
        return Response(DeliverySerializer(resent).data, status=status.HTTP_202_ACCEPTED)
