"""The moderation permissions, by name, so that views, templates and tests agree."""

from __future__ import annotations

REVIEW_CASES = "moderation.review_cases"
