"""What each event says. Links are absolute (SITE_URL): the worker has no request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from detection.models import Submission
from moderation.selectors import SubmissionOutcome


def submission_analysed(*, submission: Submission) -> dict[str, Any]:
    """The final status, the verdict and every face's probabilities."""
    faces = submission.faces.order_by("index") if submission.is_final else []
    return {
        "submission": {
            **_link(submission),
            "status": submission.status,
            "verdict": submission.verdict or None,
            "fake_probability": submission.fake_probability,
            "failure_reason": submission.failure_reason or None,
            "finished_at": _time(submission.finished_at),
            "model": (
                {"version": submission.model_version, "trained": submission.model_trained}
                if submission.model_version
                else None
            ),
            "faces": [
                {
                    "index": face.index,
                    "box": face.box,
                    "fake_probability": face.fake_probability,
                    "real_probability": face.real_probability,
                    "quality": face.quality,
                    "quality_reasons": face.quality_reasons,
                }
                for face in faces
            ],
        }
    }


def submission_decided(
    *, submission: Submission, outcome: SubmissionOutcome, inherited: bool
) -> dict[str, Any]:
    """The moderation outcome as the uploader sees it: no notes, no moderator names."""
    return {
        "submission": _link(submission),
        "outcome": {
            "state": outcome.state,
            "label": outcome.label,
            "decided_at": _time(outcome.decided_at),
        },
        "inherited": inherited,
    }


def _link(submission: Submission) -> dict[str, str]:
    path = reverse("api:submission-detail", kwargs={"submission_id": submission.id})
    return {"id": str(submission.id), "url": settings.SITE_URL + path}


def _time(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
