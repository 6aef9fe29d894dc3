"""`manage.py loadtest` end to end, briefly: the real servers under a few seconds of locust."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from conftest import REPO_ROOT, redis_is_up, require_service

pytestmark = pytest.mark.slow

REPORT_LINE = re.compile(r"^(?P<key>[a-z/ -]+): (?P<value>.+)$")


def smoke_database_url() -> str:
    """The test database server, with a database of the smoke test's own (it is dropped)."""
    configured = settings.DATABASES["default"]
    if configured["ENGINE"] != "django.db.backends.postgresql":
        return "postgres://postgres@127.0.0.1:5432/faceproof_load_smoke"
    user = configured.get("USER") or ""
    password = f":{configured['PASSWORD']}" if configured.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    host = f"{configured.get('HOST') or '127.0.0.1'}:{configured.get('PORT') or 5432}"
    return f"postgres://{credentials}{host}/faceproof_load_smoke"


def smoke_redis_url() -> str:
    broker = settings.CELERY_BROKER_URL
    server = broker.rsplit("/", 1)[0] if broker.startswith("redis://") else "redis://127.0.0.1:6379"
    # A database index no other test uses: the load test flushes it.
    return f"{server}/10"


def postgres_is_up(url: str) -> bool:
    try:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def test_a_short_load_test_reports_every_number_and_loses_nothing(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    database_url, redis_url = smoke_database_url(), smoke_redis_url()
    require_service(postgres_is_up(database_url), f"PostgreSQL for {database_url}")
    require_service(redis_is_up(redis_url), f"Redis at {redis_url}")

    completed = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "loadtest",
            "--users=2",
            "--spawn-rate=2",
            "--duration=5",
            "--gunicorn-workers=1",
            "--celery-concurrency=1",
            "--drain=40",
            f"--database-url={database_url}",
            f"--redis-url={redis_url}",
            f"--checkpoint={demo_checkpoint}",
            f"--runs-dir={tmp_path}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = f"{completed.stdout}\n{completed.stderr}"
    assert completed.returncode == 0, output
    report = {
        match["key"]: match["value"]
        for match in map(REPORT_LINE.match, completed.stdout.splitlines())
        if match
    }
    for key in ("requests/s", "uploads", "status polls", "upload-to-result latency"):
        assert key in report, output
    assert 0 < float(report["requests/s"]) < 1000
    assert report["error ratio"].startswith("0.0000 "), output
    accepted = int(report["accepted submissions"].split()[0])
    assert accepted >= 1
    assert report["final"].startswith(f"{accepted} ")
    assert report["lost"] == "0"
    assert report["duplicated"].startswith("0 ")
    latency = r"p50 [\d.]+ s, p95 [\d.]+ s, p99 [\d.]+ s, max [\d.]+ s"
    assert re.fullmatch(latency, report["upload-to-result latency"]), output
