"""Crashes with a real worker and a real Redis: whole-worker SIGKILL and broker restarts.

The database is the source of truth: whatever the broker forgets, the sweeper
(`detection.tasks.sweep_stuck_submissions`, run by the worker itself as beat would) sends
again, and the conditional-UPDATE claim keeps the results single.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from conftest import (
    TEST_FRAMES,
    WorkerProcess,
    assert_no_orphaned_files,
    free_port,
    redis_is_up,
    require_service,
)
from deepfake_site.celery import app as celery_app
from detection.models import Submission
from detection.tasks import analyze_submission, sweep_stuck_submissions
from detection.tests.factories import SubmissionFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Short, so that the test need not wait ten minutes for the sweeper to give up on a claim. The
# workers have one pool child, so a sweep never runs beside a live analysis to take it over.
STALE_AFTER_SECONDS = 3
FINAL_TIMEOUT_SECONDS = 90
Persistence = Literal["none", "aof"]


def worker_env(checkpoint: Path, **overrides: str) -> dict[str, str]:
    return {
        "DEEPFAKE_CHECKPOINT": str(checkpoint),
        "TORCH_NUM_THREADS": "1",
        "ANALYSIS_RETRY_DELAY_SECONDS": "0",
        "ANALYSIS_STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
        **overrides,
    }


def statuses(submission_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    return dict(Submission.objects.filter(id__in=submission_ids).values_list("id", "status"))


def all_final(submission_ids: list[uuid.UUID]) -> bool:
    return all(status in Submission.FINAL_STATUSES for status in statuses(submission_ids).values())


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def sweep_until_final(
    submission_ids: list[uuid.UUID], send_sweep: Callable[[], object], worker: WorkerProcess
) -> None:
    """Send the sweeper task now and then, as beat would, until every submission is final."""
    deadline = time.monotonic() + FINAL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        send_sweep()
        sweep_sent = time.monotonic()
        while time.monotonic() < min(sweep_sent + STALE_AFTER_SECONDS, deadline):
            if all_final(submission_ids):
                return
            time.sleep(0.1)
    raise AssertionError(
        f"not final after {FINAL_TIMEOUT_SECONDS}s: {statuses(submission_ids)}\n{worker.log()}"
    )


def living(pids: list[int]) -> list[int]:
    """The processes among `pids` that still run (a reaped or zombie process does not)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def stored_sample_submission(name: str) -> Submission:
    """A queued submission whose stored image is a real sample frame (with faces)."""
    data = (TEST_FRAMES / name).read_bytes()
    submission_id = uuid.uuid4()
    image = default_storage.save(f"submissions/{submission_id}/image.jpg", ContentFile(data))
    return SubmissionFactory.create(id=submission_id, image=image, format="JPEG")


def send_through(broker_url: str, task_name: str, *args: str) -> None:
    """Publish to this broker, not to the one the test process's Celery app is set up with."""
    with celery_app.connection_for_write(broker_url) as connection:
        celery_app.send_task(task_name, args=args, connection=connection)


class DedicatedRedis:
    """A redis-server of the test's own, so that the test may stop it without harming others."""

    def __init__(self, *, port: int, folder: Path, persistence: Persistence) -> None:
        self.port = port
        self.folder = folder
        self.url = f"redis://127.0.0.1:{port}/0"
        self.arguments = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
            # Never an RDB snapshot: with AOF off a restart keeps nothing, the worst case.
            "--save",
            "",
            *(
                ["--appendonly", "yes", "--appendfsync", "always"]
                if persistence == "aof"
                else ["--appendonly", "no"]
            ),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1)

    def start(self) -> None:
        self.process = subprocess.Popen(self.arguments, cwd=self.folder)
        wait_until(lambda: redis_is_up(self.url), timeout=10, what=f"redis-server on {self.port}")

    def shutdown_without_saving(self) -> None:
        assert self.process is not None
        # What `redis-cli -p PORT shutdown nosave` sends: the queued messages are gone
        # unless the append-only file already holds them.
        self.client().shutdown(nosave=True)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def dedicated_redis(tmp_path: Path) -> Iterator[Callable[[Persistence], DedicatedRedis]]:
    require_service(shutil.which("redis-server") is not None, "the redis-server program")
    servers: list[DedicatedRedis] = []

    def start(persistence: Persistence) -> DedicatedRedis:
        folder = tmp_path / f"redis-{len(servers)}"
        folder.mkdir()
        server = DedicatedRedis(port=free_port(), folder=folder, persistence=persistence)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def settings_broker_is_redis() -> None:
    require_service(
        settings.CELERY_BROKER_URL.startswith("redis://")
        and redis_is_up(settings.CELERY_BROKER_URL),
        "Redis as the Celery broker (CELERY_BROKER_URL=redis://...)",
    )


def kill_the_whole_worker_mid_analysis(
    client: Client, worker: WorkerProcess, frame: str
) -> uuid.UUID:
    """Upload a frame, wait for the worker to claim it, then SIGKILL the main process and
    its pool child together, as an OOM kill of the container would: nobody is left to
    reject the message, so Redis keeps it unacknowledged for the visibility timeout."""
    client.force_login(UserFactory.create(username="owner"))
    with (TEST_FRAMES / frame).open("rb") as image:
        response = client.post(reverse("api:submission-list"), {"image": image})
    assert response.status_code == 202, response.content
    submission_id = uuid.UUID(response.json()["id"])
    wait_until(
        lambda: statuses([submission_id])[submission_id] == Submission.Status.PROCESSING,
        timeout=60,
        what="the worker to claim the submission",
    )
    assert worker.process is not None
    group = [worker.process.pid, *worker.child_pids()]
    worker.stop(sig=signal.SIGKILL)
    wait_until(lambda: not living(group), timeout=10, what="every worker process to die")
    abandoned = Submission.objects.get(id=submission_id)
    assert (abandoned.status, abandoned.attempts) == (Submission.Status.PROCESSING, 1)
    assert abandoned.claimed_by_worker == worker.hostname
    return submission_id


def test_whole_worker_killed_mid_analysis_is_recovered_by_another_worker_at_its_start(
    client: Client,
    start_worker: Callable[..., WorkerProcess],
    demo_checkpoint: Path,
    settings_broker_is_redis: None,
) -> None:
    # Claims go stale only after ten minutes: the sweeper is not what recovers this one.
    env = worker_env(demo_checkpoint, ANALYSIS_STALE_AFTER_SECONDS="600")
    worker = start_worker(queues="inference,celery", env=env)
    submission_id = kill_the_whole_worker_mid_analysis(client, worker, "fake_frame_2.jpg")

    # A worker under another name (a new container) pings the others at its start: the
    # claim's worker does not answer, so the claim died with it.
    restarted = start_worker(queues="inference,celery", env=env)
    wait_until(
        lambda: all_final([submission_id]),
        timeout=FINAL_TIMEOUT_SECONDS,
        what=f"the new worker to finish it: {statuses([submission_id])}",
    )

    submission = Submission.objects.get(id=submission_id)
    assert submission.status == Submission.Status.DONE, submission.failure_reason
    assert submission.attempts == 2
    assert submission.faces.exists()
    assert_no_orphaned_files([submission_id])
    assert f"re-sending {submission_id}: the worker that claimed it died" in restarted.log()


def test_a_worker_restarted_after_a_kill_sends_its_lost_claim_again_at_once(
    client: Client, start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path
) -> None:
    """No sweeper runs here, and claims only go stale after ten minutes: the restarted
    worker itself must notice that the claim died with its previous run."""
    env = worker_env(demo_checkpoint, ANALYSIS_STALE_AFTER_SECONDS="600")
    worker = start_worker(queues="inference,celery", env=env, hostname="restarted@localhost")
    submission_id = kill_the_whole_worker_mid_analysis(client, worker, "fake_frame_3.jpg")

    restarted = start_worker(queues="inference,celery", env=env, hostname="restarted@localhost")
    wait_until(
        lambda: all_final([submission_id]),
        timeout=FINAL_TIMEOUT_SECONDS,
        what=f"the restarted worker to finish it: {statuses([submission_id])}",
    )
    submission = Submission.objects.get(id=submission_id)
    assert submission.status == Submission.Status.DONE, submission.failure_reason
    assert submission.attempts == 2
    assert "the worker that claimed it died" in restarted.log()
    assert_no_orphaned_files([submission_id])


@pytest.mark.parametrize("persistence", ["none", "aof"])
def test_redis_restart_with_submissions_queued_still_finishes_every_submission(
    persistence: Persistence,
    start_worker: Callable[..., WorkerProcess],
    dedicated_redis: Callable[[Persistence], DedicatedRedis],
    demo_checkpoint: Path,
) -> None:
    broker = dedicated_redis(persistence)
    worker = start_worker(
        queues="inference,celery",
        env=worker_env(
            demo_checkpoint, CELERY_BROKER_URL=broker.url, CELERY_RESULT_BACKEND=broker.url
        ),
    )
    submission_ids = [
        stored_sample_submission(name).id
        for name in ("fake_frame_3.jpg", "fake_frame_4.jpg", "real_frame_5.jpg", "real_frame_6.jpg")
    ]
    for submission_id in submission_ids:
        send_through(broker.url, analyze_submission.name, str(submission_id))

    wait_until(
        lambda: Submission.Status.PROCESSING in statuses(submission_ids).values(),
        timeout=60,
        what="the worker to claim a first submission",
    )
    messages_waiting = broker.client().llen("inference")
    assert messages_waiting >= 2, "the restart must find several submissions still queued"
    broker.shutdown_without_saving()
    broker.start()

    messages_after_restart = broker.client().llen("inference")
    if persistence == "none":
        assert messages_after_restart == 0, "without AOF a restart forgets the queued messages"
        sweep_until_final(
            submission_ids,
            lambda: send_through(broker.url, sweep_stuck_submissions.name),
            worker,
        )
        assert "re-enqueueing stuck submission" in worker.log()
    else:
        # The worker may already have taken one of them back since the restart.
        assert messages_after_restart >= messages_waiting - 1
        wait_until(
            lambda: all_final(submission_ids),
            timeout=FINAL_TIMEOUT_SECONDS,
            what=f"the surviving messages to be analysed: {statuses(submission_ids)}",
        )
        assert "re-enqueueing" not in worker.log(), "nothing was lost, so nothing was re-sent"

    finished = Submission.objects.filter(id__in=submission_ids)
    assert {submission.status for submission in finished} == {Submission.Status.DONE}
    assert all(submission.faces.exists() for submission in finished)
    assert_no_orphaned_files(submission_ids)
