"""The API's pages (a module of its own: DRF imports it while drf-spectacular loads)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


class PageNumberPagination(pagination.PageNumberPagination):
    """`page` and `page_size`: the size is honoured up to API_MAX_PAGE_SIZE; a size that is
    not a positive whole number is an error, not silently the default."""

    page_size_query_param = "page_size"
    # The schema says `page` is a number; "last" would be a second, undocumented kind.
    last_page_strings = ()

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param or "")
        if raw is None:
            return int(self.page_size or 0)
        return min(
            _positive_whole_number(self.page_size_query_param or "", raw),
            settings.API_MAX_PAGE_SIZE,
        )

    def get_page_number(self, request: Request, paginator: Any) -> int:
        raw = request.query_params.get(self.page_query_param)
        # A page past the last is still 404 (DRF's "Invalid page."): it was a number.
        return 1 if raw is None else _positive_whole_number(self.page_query_param, raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number, from 1 (past the last page: 404).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": (
                    f"Rows per page (default {self.page_size}); values above "
                    f"{settings.API_MAX_PAGE_SIZE} give {settings.API_MAX_PAGE_SIZE}."
                ),
                "schema": {"type": "integer", "minimum": 1},
            },
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "description": "Rows on every page together."},
                "next": {**link, "description": "The next page, or null on the last one."},
                "previous": {**link, "description": "The previous page, or null on the first."},
                "results": schema,
            },
        }


def _positive_whole_number(name: str, raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({name: ["Give a whole number of 1 or more."]})
    return int(raw)
