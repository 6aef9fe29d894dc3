"""Thin Celery tasks: they take ids and call one service each.

Heavy imports (torch, the pipeline) happen inside the services, in the worker's child
process, never when this module is imported.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery import Celery, Task, shared_task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import connections

from detection import services

logger = logging.getLogger(__name__)
# Answers to the start-up ping that arrive later than this count as a dead worker's silence.
_PING_SECONDS = 2.0


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
    _run_analysis(self, submission_id)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # analysis_send gives each clip limits that grow with its length; these are the most
    # any clip gets, for a message sent without them.
    soft_time_limit=settings.VIDEO_TIME_LIMIT_MAX
    - (settings.CELERY_TASK_TIME_LIMIT - settings.CELERY_TASK_SOFT_TIME_LIMIT),
    time_limit=settings.VIDEO_TIME_LIMIT_MAX,
    max_retries=None,
)
def analyze_video(self: Task, submission_id: str) -> None:
    """A video's analysis: the same service on the `video` queue, which its own worker
    serves, so that minutes of video never hold up photos."""
    _run_analysis(self, submission_id)


def _run_analysis(task: Task, submission_id: str) -> None:
    try:
        services.analysis_run(
            submission_id=uuid.UUID(submission_id),
            task_id=str(task.request.id),
            worker=str(task.request.hostname),
        )
    except services.RetryableAnalysisError as error:
        raise task.retry(exc=error, countdown=settings.ANALYSIS_RETRY_DELAY_SECONDS) from error
    except services.EnvironmentUnavailable as error:
        # Storage or the database is down: wait longer each time, up to the stale limit.
        delay = settings.ANALYSIS_RETRY_DELAY_SECONDS * 2 ** min(task.request.retries, 16)
        countdown = min(max(delay, 1), settings.ANALYSIS_STALE_AFTER_SECONDS)
        raise task.retry(exc=error, countdown=countdown) from error


@shared_task
def sweep_stuck_submissions() -> int:
    return len(services.submissions_requeue_stuck())


@worker_ready.connect
def recover_claims_of_dead_workers(sender: Any, **_: Any) -> None:
    """A starting worker sends again at once what died with it or with other workers,
    instead of leaving it to the sweeper's stale limit (ten minutes)."""
    try:
        services.submissions_recover_dead_claims(
            this_worker=sender.hostname, live_workers=_live_workers(sender.app)
        )
    finally:
        # This runs in the worker's main process, which forks new pool children later:
        # they must not inherit its database connection.
        connections.close_all()


def _live_workers(app: Celery) -> set[str] | None:
    """The workers that answer a ping, or None where the broker cannot broadcast one."""
    if not str(app.conf.broker_url).startswith(("redis://", "rediss://")):
        return None
    try:
        answers = app.control.ping(timeout=_PING_SECONDS)
    except Exception:  # a failed ping must not stop the worker; only its recovery is lost
        logger.exception("cannot ping the other workers")
        return None
    return {name for answer in answers or [] for name in answer}


@worker_process_init.connect
def load_the_model(**_: Any) -> None:
    """Each pool process loads the models when it starts, not in its first analysis.

    After the fork, never before it: the parent must not hold torch state (CUDA is not
    fork-safe). The ONNX graph is normally in the cache already (`manage.py prepare_model`);
    if not, the first process to start exports it.
    """
    from detection.ml.pipeline import get_analyzer
    from detection.pipeline_config import pipeline_config_from_settings

    started = time.perf_counter()
    try:
        model = get_analyzer(pipeline_config_from_settings()).model
    except Exception:  # a broken model must not stop the worker: each analysis reports it
        logger.exception("cannot load the model at start; analyses will say why")
        return
    logger.info(
        "model %s (%s) ready in %.1f s", model.name, model.version, time.perf_counter() - started
    )
