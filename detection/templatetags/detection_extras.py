"""Display helpers for the result pages."""

from __future__ import annotations

from django import template

from detection.ml.quality import QualityReason

register = template.Library()

_REASONS = {
    QualityReason.TOO_SMALL: "too small",
    QualityReason.BLURRY: "blurred",
    QualityReason.PROFILE: "turned away",
    QualityReason.LOW_DETECTION: "possibly not a face",
    QualityReason.TOO_BRIEF: "seen on too few frames",
}


@register.filter
def quality_reasons(reasons: list[str]) -> str:
    """Why a face is too poor to judge, in words: 'too small, blurred'."""
    return ", ".join(_REASONS.get(QualityReason(reason), reason) for reason in reasons)
