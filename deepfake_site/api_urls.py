"""Every JSON API route under /api/v1/, in one namespace (`api:`), from each app's list."""

from __future__ import annotations

from django.urls import re_path

from detection import api as detection_api
from detection.api_urls import urlpatterns as detection_urls
from moderation.api_urls import urlpatterns as moderation_urls
from webhooks.api_urls import urlpatterns as webhook_urls

app_name = "api"

urlpatterns = [
    *detection_urls,
    *moderation_urls,
    *webhook_urls,
    # Last: every other path under the API answers in the API's own error format.
    # [\s\S], not ".": paths with a line break in them too, which Django's HTML 404 page
    # would answer otherwise.
    re_path(r"^[\s\S]*$", detection_api.not_found, name="not-found"),
]
