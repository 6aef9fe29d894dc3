"""Admin pages of records: what happened, shown but never added, changed or deleted by hand."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class RecordAdmin:
    """Mixed into a ModelAdmin or an inline whose rows are evidence (faces, review cases and
    events): the services write them, and a hand edit would falsify the history."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
