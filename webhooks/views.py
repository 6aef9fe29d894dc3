"""The webhook settings pages: an account's endpoints, their deliveries, re-sending one."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from deepfake_site.http import SignedInRequest
from webhooks import selectors, services
from webhooks.forms import EndpointChangeForm, EndpointForm
from webhooks.models import WebhookEndpoint

DELIVERIES_PAGE_SIZE = 25


def _get_endpoint(request: SignedInRequest, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = selectors.webhook_endpoint_get_for_user(endpoint_id=endpoint_id, user=request.user)
    if endpoint is None:
        raise Http404("No such endpoint")
    return endpoint


@login_required
@require_http_methods(["GET", "POST"])
def endpoints(request: SignedInRequest) -> HttpResponse:
    """The list, and a form to add one; a new endpoint's secret is shown on this answer only."""
    form = EndpointForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.webhook_endpoint_create(
                owner=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            form = EndpointForm()
    return render(
        request,
        "webhooks/endpoints.html",
        {
            "form": form,
            "created": created,
            "endpoints": selectors.webhook_endpoints_for_user(user=request.user),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_detail(request: SignedInRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    initial = {"url": endpoint.url, "events": endpoint.events, "is_active": endpoint.is_active}
    form = EndpointChangeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.webhook_endpoint_update(endpoint=endpoint, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Endpoint saved.")
            return redirect("webhooks:endpoint-detail", endpoint_id=endpoint.id)
    deliveries = selectors.webhook_deliveries_for_endpoint(endpoint=endpoint)
    page = Paginator(deliveries, DELIVERIES_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/endpoint_detail.html",
        {"endpoint": endpoint, "form": form, "page": page},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def endpoint_delete(request: SignedInRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    services.webhook_endpoint_delete(endpoint=_get_endpoint(request, endpoint_id))
    messages.success(request, "Endpoint deleted.")
    return redirect("webhooks:endpoints")


@login_required
@require_POST
def delivery_resend(
    request: SignedInRequest, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    delivery = selectors.webhook_delivery_get(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery")
    try:
        services.webhook_delivery_resend(delivery=delivery)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"The {delivery.event} event is being sent again.")
    return redirect("webhooks:endpoint-detail", endpoint_id=endpoint.id)
