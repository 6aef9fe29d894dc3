"""A real worker process receives tasks through Redis and through the embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO_ROOT, WorkerProcess

pytestmark = pytest.mark.slow

SEND_PING = """
import json, os
from deepfake_site.tasks import worker_ping
print(json.dumps({"client_pid": os.getpid(), "reply": worker_ping.delay().get(timeout=60)}))
"""


def ping_through(broker_env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SEND_PING],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "deepfake_site.settings", **broker_env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_worker_runs_a_task_sent_through_redis(
    redis_url: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    broker_env = {"CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url}
    worker = start_worker(env=broker_env)
    answer = ping_through(broker_env)
    reply = answer["reply"]
    assert isinstance(reply, dict) and reply["pong"] is True
    assert reply["pid"] in worker.child_pids()
    assert "deepfake_site.tasks.worker_ping" in worker.log()


def test_worker_runs_a_task_sent_through_the_embedded_filesystem_broker(
    tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    broker_env = {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_DIR": str(tmp_path / "broker"),
    }
    worker = start_worker(env=broker_env)
    answer = ping_through(broker_env)
    reply = answer["reply"]
    assert isinstance(reply, dict) and reply["pid"] in worker.child_pids()
    assert (tmp_path / "broker" / "messages").is_dir()
