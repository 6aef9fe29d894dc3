"""Thin Celery tasks: they take ids and call one service each.

Heavy imports (torch, the pipeline) happen inside the services, in the worker's child
process, never when this module is imported.
"""

from __future__ import annotations

import uuid

from celery import Task, shared_task
from django.conf import settings

from detection import services


@shared_task(
    bind=True,
    acks_late=True,
    # A child killed mid-analysis (OOM, SIGKILL) puts the message back instead of losing
    # it; the attempt counter in the database stops a poison image from looping.
    reject_on_worker_lost=True,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    max_retries=None,
)
def analyze_submission(self: Task, submission_id: str) -> None:
    try:
        services.analysis_run(submission_id=uuid.UUID(submission_id), task_id=str(self.request.id))
    except services.RetryableAnalysisError as error:
        raise self.retry(exc=error, countdown=settings.ANALYSIS_RETRY_DELAY_SECONDS) from error


@shared_task
def sweep_stuck_submissions() -> int:
    return len(services.submissions_requeue_stuck())
