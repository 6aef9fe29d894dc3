"""What the JSON API's parts share: errors from the services, and how the OpenAPI schema
documents every operation's errors.

Every error is `{"code", "detail"}` (plus `fields` for invalid input; see
`detection.api.exception_handler`). Each operation's schema lists the errors it can give:
the schema class derives most of them from the operation (authentication, a body, path
parameters, a page) and a view names the rest in `error_statuses` (a conflict, the upload
limits).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as InvalidInput
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request

ERROR_DESCRIPTIONS = {
    400: "The request is invalid: `fields` says which input and why.",
    401: "No valid API token: send `Authorization: Token <key>`.",
    403: "The account may not do this (moderators and staff only), or a session request "
    "lacked its CSRF token.",
    404: "No such object visible to this account, or no such page.",
    409: "The object's state does not allow this now (decided, claimed by someone else, "
    "not held by you).",
    411: "The body was sent without a Content-Length header.",
    413: "The photo is larger than the upload limit.",
    415: "The body is not in a media type this operation reads.",
    429: "Too many requests for now; the Retry-After header says when to come back.",
    503: "A service the request needs is briefly unavailable; Retry-After says when to retry.",
}


# What each error looks like, for the docs (real codes and messages of this API).
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {
        "code": "invalid",
        "detail": "The request is invalid.",
        "fields": {"page_size": ["Give a whole number of 1 or more."]},
    },
    401: {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
    403: {
        "code": "permission_denied",
        "detail": "Only moderators and staff work the review queue.",
    },
    404: {"code": "not_found", "detail": "Not found."},
    409: {"code": "refused", "detail": "This case was already decided: confirmed manipulated."},
    411: {
        "code": "length_required",
        "detail": "Send the upload with a Content-Length header (chunked bodies are not accepted).",
    },
    413: {"code": "file_too_large", "detail": "The file is larger than the 20 MB limit."},
    415: {
        "code": "unsupported_media_type",
        "detail": 'Unsupported media type "text/plain" in request.',
    },
    429: {
        "code": "throttled",
        "detail": "Too many uploads. Each account may send 30 per minute and each network "
        "address 60 per minute; please wait a minute and try again.",
    },
    503: {
        "code": "service_unavailable",
        "detail": "Uploads are paused for a moment; please try again shortly.",
    },
}

# Documentation only: the body of every error response.
ErrorSerializer = inline_serializer(
    "Error",
    {
        "code": serializers.CharField(help_text="Machine-readable reason, e.g. `not_found`."),
        "detail": serializers.CharField(help_text="The reason in words, for people."),
        "fields": serializers.DictField(
            child=serializers.JSONField(),
            required=False,
            help_text="Only for `invalid`: each faulty input with its messages.",
        ),
    },
)


class StrictCharField(serializers.CharField):
    """Text that must be sent as a JSON string: DRF's CharField would take 0 as "0"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def refuse_empty_parameters(request: Request, *names: str) -> None:
    """A filter given as `?verdict=` is not one of its documented values: say so rather than
    read it as "any" (leaving the parameter out means that)."""
    empty = [name for name in names if request.query_params.get(name) == ""]
    if empty:
        raise InvalidInput({name: ["Give a value, or leave the parameter out."] for name in empty})


class Conflict(APIException):
    """The object's state refuses the action now (409); `code` names the reason."""

    status_code = 409
    default_code = "conflict"
    default_detail = "The object's state does not allow this now."


def invalid_input(error: DjangoValidationError) -> InvalidInput:
    """A service's refusal of the input as the API's 400, field by field where it says."""
    if hasattr(error, "error_dict"):
        return InvalidInput(error.message_dict)
    return InvalidInput({"non_field_errors": error.messages})


# Each app's operations under one heading in the docs, in this order (settings list them).
_TAGS = {"detection": "Submissions", "moderation": "Moderation", "webhooks": "Webhooks"}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with every operation's error responses listed."""

    def get_tags(self) -> list[str]:
        return [_TAGS[type(self.view).__module__.split(".")[0]]]

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status in sorted(self._error_statuses()):
            response = self._get_response_for_code(ErrorSerializer, str(status))
            response["description"] = ERROR_DESCRIPTIONS[status]
            response["content"]["application/json"]["example"] = ERROR_EXAMPLES[status]
            responses.setdefault(str(status), response)
        if self._takes_query_parameters():
            # Said by the web server in front, not by the API: it reads the request line
            # before anything of ours runs, and answers in HTML.
            responses["414"] = {
                "description": "The URL is longer than the web server reads (gunicorn: 4 KB; "
                "nginx: 8 KB); answered by it in HTML, before the API sees the request.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        return responses

    def _takes_query_parameters(self) -> bool:
        paginated = self._is_list_view() and self._get_paginator() is not None
        return paginated or any(
            isinstance(parameter, OpenApiParameter) and parameter.location == "query"
            for parameter in self.get_override_parameters()
        )

    def _error_statuses(self) -> set[int]:
        # A view lists the errors only it knows of (a conflict, the upload limits).
        statuses = set(getattr(self.view, "error_statuses", ()))
        has_body = self.method in ("POST", "PUT", "PATCH") and self._get_request_body()
        if has_body:
            statuses |= {400, 415}
        permissions = self.view.get_permissions()
        if any(not isinstance(p, AllowAny) for p in permissions):
            statuses.add(401)
            if self.method not in ("GET", "HEAD", "OPTIONS"):
                # A session request without its CSRF token (browsers; token clients never).
                statuses.add(403)
        if any(type(p) not in (AllowAny, IsAuthenticated) for p in permissions):
            statuses.add(403)  # a role the account lacks
        if "{" in self.path:
            statuses.add(404)
        if self._is_list_view() and self._get_paginator():
            statuses.add(404)  # a page past the last
        if self._takes_query_parameters():
            statuses.add(400)  # a page, a page size or a filter outside its values
        return statuses
