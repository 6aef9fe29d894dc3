"""Logging filters (settings.LOGGING uses them)."""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """A refused request (a 4xx Django logs with its exception) keeps its one line, not the
    traceback: a permission check or a bad request working as meant is not a fault, and its
    traceback would bury the ones that are. Server errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
