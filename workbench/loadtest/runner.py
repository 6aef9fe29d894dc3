"""`manage.py loadtest`: the whole service under locust on this machine, then what it did.

One run starts everything production runs (gunicorn, a Celery worker pool, beat with the
sweeper) on a dedicated PostgreSQL database, migrated fresh, and a dedicated Redis database
index; drives it with the `locustfile.py` beside this module for a bounded time; waits a
bounded time for the accepted uploads to finish; and reads from the database what happened
to every one of them. Every process it starts is stopped again, whatever happens.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import environ
import psycopg
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.db.models import Count
from psycopg import sql

from deepfake_site.services import api_token_rotate
from detection.models import Face, Submission

# The load database is reached through its own alias: the command itself may run on the
# developer's database, which the run must never touch.
DATABASE_ALIAS = "loadtest"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
START_TIMEOUT_SECONDS = 120
STOP_GRACE_SECONDS = 20


class LoadTestError(Exception):
    """The run could not be carried out (a server failed to start, a process died)."""


@dataclass(frozen=True)
class LoadTestConfig:
    users: int
    spawn_rate: float
    duration_seconds: int
    gunicorn_workers: int
    gunicorn_threads: int
    celery_concurrency: int
    torch_threads: int
    drain_seconds: int
    database_url: str
    redis_url: str
    checkpoint: Path
    samples_dir: Path
    runs_dir: Path  # each run writes its logs, locust CSVs and report.json in a subfolder


@dataclass(frozen=True)
class HttpStats:
    """One request name from locust's CSV; percentiles in milliseconds (None: no requests)."""

    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def line(self) -> str:
        return (
            f"{self.requests} requests, {self.failures} failed, p50 {_ms(self.p50_ms)}, "
            f"p95 {_ms(self.p95_ms)}, p99 {_ms(self.p99_ms)}"
        )


@dataclass(frozen=True)
class LoadReport:
    config: LoadTestConfig
    run_dir: Path
    requests_per_second: float
    total_requests: int
    failed_requests: int
    uploads: HttpStats
    status_polls: HttpStats
    failure_reasons: list[str]
    accepted: int
    final: int
    by_status: dict[str, int]
    drain_seconds: float
    # Other work on the machine skews every number: the 1-minute load average at the start
    # of the traffic and at its end (this run's own processes included) says how much.
    load_average_before: float
    load_average_after: float
    duplicate_uploads: int
    duplicate_faces: int
    analysed_more_than_once: int
    latency_seconds: dict[str, float]

    @property
    def lost(self) -> int:
        return self.accepted - self.final

    @property
    def duplicated(self) -> int:
        return self.duplicate_uploads + self.duplicate_faces

    @property
    def error_ratio(self) -> float:
        return self.failed_requests / self.total_requests if self.total_requests else 0.0

    def lines(self) -> list[str]:
        config = self.config
        statuses = ", ".join(f"{status} {count}" for status, count in self.by_status.items())
        latency = ", ".join(f"{name} {value:.2f} s" for name, value in self.latency_seconds.items())
        return [
            f"setup: {config.users} users (spawn {config.spawn_rate:g}/s) for "
            f"{config.duration_seconds} s; gunicorn {config.gunicorn_workers} workers x "
            f"{config.gunicorn_threads} threads; Celery {config.celery_concurrency} processes x "
            f"{config.torch_threads} torch threads",
            f"run folder: {self.run_dir}",
            f"machine load: {self.load_average_before:.2f} before the traffic, "
            f"{self.load_average_after:.2f} at its end (1-minute load average, {os.cpu_count()} "
            "CPUs)",
            f"requests/s: {self.requests_per_second:.2f}",
            f"uploads: {self.uploads.line()}",
            f"status polls: {self.status_polls.line()}",
            f"error ratio: {self.error_ratio:.4f} ({self.failed_requests} of "
            f"{self.total_requests})",
            *(f"error: {reason}" for reason in self.failure_reasons),
            f"accepted submissions: {self.accepted} "
            f"({self.accepted / config.duration_seconds:.2f}/s during the traffic)",
            f"final: {self.final} ({statuses or 'none'}) after a {self.drain_seconds:.1f} s drain",
            f"lost: {self.lost}",
            f"duplicated: {self.duplicated} (same uploader and image: {self.duplicate_uploads}, "
            f"repeated face indexes: {self.duplicate_faces})",
            f"analysed more than once: {self.analysed_more_than_once}",
            f"upload-to-result latency: {latency or 'n/a'}",
        ]


def loadtest_run(config: LoadTestConfig, *, progress: Callable[[str], object]) -> LoadReport:
    """Run the whole load test and return what it measured; raises LoadTestError."""
    run_dir = config.runs_dir / time.strftime("%Y%m%d-%H%M%S")
    (run_dir / "media").mkdir(parents=True)
    progress(f"run folder {run_dir}")
    _recreate_database(config.database_url)
    redis.Redis.from_url(config.redis_url).flushdb()
    env = _service_env(config, run_dir)
    progress("migrating a fresh database")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
    )
    _register_database(config.database_url)
    try:
        tokens = _api_tokens(count=config.users)
        port = _free_port()
        with ExitStack() as running:
            worker = _start(running, "worker", _worker_command(config), env, run_dir)
            beat = _start(running, "beat", _beat_command(run_dir), env, run_dir)
            web = _start(running, "gunicorn", _gunicorn_command(config, port), env, run_dir)
            _wait_for_worker(worker)
            _wait_for_http(web, f"http://127.0.0.1:{port}/api/v1/submissions/")
            progress(f"running locust for {config.duration_seconds} s")
            load_before = os.getloadavg()[0]
            _run_locust(config, port, tokens, run_dir)
            load_after = os.getloadavg()[0]
            progress(f"draining for at most {config.drain_seconds} s")
            drained_in = _drain(config.drain_seconds, watched=[worker, beat, web])
        report = _report(config, run_dir, drained_in, (load_before, load_after))
    finally:
        connections[DATABASE_ALIAS].close()
    summary = {
        **asdict(report),
        "lost": report.lost,
        "duplicated": report.duplicated,
        "error_ratio": report.error_ratio,
    }
    (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    # The stored uploads are copies of the sample frames; the logs and CSVs stay.
    shutil.rmtree(run_dir / "media")
    return report


class ManagedProcess:
    """A server in its own process group, so that stopping it stops its children too."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def require_running(self) -> None:
        if self.process.poll() is not None:
            raise LoadTestError(
                f"{self.name} exited with {self.process.returncode}; see {self.log}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            # Celery's warm shutdown lets running analyses finish; gunicorn drains requests.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_GRACE_SECONDS)
        self._log_file.close()


def _start(
    running: ExitStack, name: str, command: list[str], env: dict[str, str], run_dir: Path
) -> ManagedProcess:
    managed = ManagedProcess(name, command, env, run_dir / f"{name}.log")
    running.callback(managed.stop)
    return managed


def _worker_command(config: LoadTestConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "deepfake_site",
        "worker",
        "--queues",
        "inference,celery",
        "--concurrency",
        str(config.celery_concurrency),
        "--hostname",
        "loadtest@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def _beat_command(run_dir: Path) -> list[str]:
    # The sweeper, scheduled as in production; its schedule file stays in the run folder.
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "deepfake_site",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(run_dir / "celerybeat-schedule"),
    ]


def _gunicorn_command(config: LoadTestConfig, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "deepfake_site.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(config.gunicorn_workers),
        "--threads",
        str(config.gunicorn_threads),
    ]


def _service_env(config: LoadTestConfig, run_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        # A developer's .env must not send the servers to another database or broker.
        "ENV_FILE": os.devnull,
        "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": config.database_url,
        "CELERY_BROKER_URL": config.redis_url,
        "CELERY_RESULT_BACKEND": config.redis_url,
        "CACHE_URL": config.redis_url,
        "MEDIA_ROOT": str(run_dir / "media"),
        "DEEPFAKE_CHECKPOINT": str(config.checkpoint),
        "TORCH_NUM_THREADS": str(config.torch_threads),
        # Plain HTTP on 127.0.0.1 (in production TLS ends at the proxy in front).
        "SECURE_SSL_REDIRECT": "false",
        # Every simulated client shares 127.0.0.1: the per-address upload limit would
        # measure itself, not the service.
        "RATELIMIT_ENABLE": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def _recreate_database(url: str) -> None:
    target = environ.Env.db_url_config(url)
    if target["ENGINE"] != "django.db.backends.postgresql":
        raise LoadTestError(f"the load test needs PostgreSQL, not {url}")
    configured = settings.DATABASES["default"]
    if (target["NAME"], target["HOST"], str(target["PORT"])) == (
        configured["NAME"],
        configured.get("HOST"),
        str(configured.get("PORT")),
    ):
        raise LoadTestError(f"{target['NAME']} is this site's own database; pick another")
    with psycopg.connect(
        dbname="postgres",
        user=target["USER"] or None,
        password=target["PASSWORD"] or None,
        host=target["HOST"],
        port=target["PORT"],
        autocommit=True,
    ) as admin:
        name = sql.Identifier(target["NAME"])
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _register_database(url: str) -> None:
    config = environ.Env.db_url_config(url)
    connections.settings[DATABASE_ALIAS] = connections.configure_settings({"default": config})[
        "default"
    ]


def _api_tokens(*, count: int) -> list[str]:
    """One API client per simulated user, as separate platforms would be."""
    tokens = []
    for number in range(count):
        user = User.objects.db_manager(DATABASE_ALIAS).create_user(f"load-client-{number}")
        tokens.append(api_token_rotate(user=user))
    return tokens


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_worker(worker: ManagedProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        worker.require_running()
        if b" ready." in worker.log.read_bytes():
            return
        time.sleep(0.2)
    raise LoadTestError(f"the worker was not ready in {START_TIMEOUT_SECONDS} s; see {worker.log}")


def _wait_for_http(web: ManagedProcess, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        web.require_running()
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (our own 127.0.0.1 server)
        except urllib.error.HTTPError:
            return  # 401 without a token: the application answered
        except OSError:
            time.sleep(0.2)
            continue
        return
    raise LoadTestError(f"gunicorn did not answer in {START_TIMEOUT_SECONDS} s; see {web.log}")


def _run_locust(config: LoadTestConfig, port: int, tokens: list[str], run_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(config.users),
        "--spawn-rate",
        str(config.spawn_rate),
        "--run-time",
        f"{config.duration_seconds}s",
        "--host",
        f"http://127.0.0.1:{port}",
        "--csv",
        str(run_dir / "locust"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {
        **os.environ,
        "LOADTEST_TOKENS": ",".join(tokens),
        "LOADTEST_SAMPLES_DIR": str(config.samples_dir),
    }
    with (run_dir / "locust.log").open("wb") as log:
        # Locust exits 1 whenever a request failed; the report counts those, so the exit
        # status is not an error here. The timeout only guards against a hung locust.
        completed = subprocess.run(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=config.duration_seconds + START_TIMEOUT_SECONDS,
            check=False,
        )
    if not (run_dir / "locust_stats.csv").exists():
        raise LoadTestError(
            f"locust exited with {completed.returncode} and no statistics; "
            f"see {run_dir / 'locust.log'}"
        )


def _drain(limit_seconds: int, *, watched: list[ManagedProcess]) -> float:
    """Wait until every accepted submission is final, or the limit; returns seconds waited."""
    started = time.monotonic()
    submissions = Submission.objects.using(DATABASE_ALIAS)
    while time.monotonic() - started < limit_seconds:
        for process in watched:
            process.require_running()
        if not submissions.exclude(status__in=Submission.FINAL_STATUSES).exists():
            break
        time.sleep(1)
    return time.monotonic() - started


def _report(
    config: LoadTestConfig,
    run_dir: Path,
    drained_in: float,
    load_averages: tuple[float, float],
) -> LoadReport:
    stats = _locust_stats(run_dir / "locust_stats.csv")
    total = stats["Aggregated"]
    submissions = Submission.objects.using(DATABASE_ALIAS)
    finished = submissions.filter(status__in=Submission.FINAL_STATUSES)
    by_status = dict(finished.values_list("status").annotate(count=Count("id")).order_by("status"))
    repeated_uploads = (
        submissions.values("uploader", "sha256").annotate(copies=Count("id")).filter(copies__gt=1)
    )
    repeated_faces = (
        Face.objects.using(DATABASE_ALIAS)
        .values("submission", "index")
        .annotate(copies=Count("id"))
        .filter(copies__gt=1)
    )
    latencies = [
        finished_at - queued_at
        for queued_at, finished_at in finished.values_list("queued_at", "finished_at")
        if finished_at is not None
    ]
    return LoadReport(
        config=config,
        run_dir=run_dir,
        requests_per_second=float(total["Requests/s"]),
        total_requests=int(total["Request Count"]),
        failed_requests=int(total["Failure Count"]),
        uploads=_http_stats(stats.get("upload")),
        status_polls=_http_stats(stats.get("status")),
        failure_reasons=_failure_reasons(run_dir / "locust_failures.csv"),
        accepted=submissions.count(),
        final=finished.count(),
        by_status=by_status,
        drain_seconds=drained_in,
        load_average_before=load_averages[0],
        load_average_after=load_averages[1],
        duplicate_uploads=sum(row["copies"] - 1 for row in repeated_uploads),
        duplicate_faces=sum(row["copies"] - 1 for row in repeated_faces),
        analysed_more_than_once=submissions.filter(attempts__gt=1).count(),
        latency_seconds=_percentiles(latencies),
    )


def _locust_stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as stats:
        return {row["Name"]: row for row in csv.DictReader(stats)}


def _http_stats(row: dict[str, str] | None) -> HttpStats:
    if row is None:
        return HttpStats(requests=0, failures=0, p50_ms=None, p95_ms=None, p99_ms=None)
    return HttpStats(
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        p50_ms=_number(row["50%"]),
        p95_ms=_number(row["95%"]),
        p99_ms=_number(row["99%"]),
    )


def _failure_reasons(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="") as failures:
        return [
            f"{row['Occurrences']}x {row['Name']}: {row['Error']}"
            for row in csv.DictReader(failures)
        ]


def _percentiles(durations: list[timedelta]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 and the maximum, in seconds; empty when nothing finished."""
    if not durations:
        return {}
    seconds = sorted(duration.total_seconds() for duration in durations)

    def nearest_rank(share: float) -> float:
        return seconds[max(math.ceil(share * len(seconds)), 1) - 1]

    return {
        "p50": nearest_rank(0.50),
        "p95": nearest_rank(0.95),
        "p99": nearest_rank(0.99),
        "max": seconds[-1],
    }


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # locust writes N/A where a request name saw no responses


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"
