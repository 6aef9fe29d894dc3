"""Settings come from the environment; production refuses to start without its secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "broker": settings.CELERY_BROKER_URL,
    "hosts": settings.ALLOWED_HOSTS,
}))
"""


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=REPO_ROOT,
        env={
            **clean,
            "ENV_FILE": os.devnull,
            "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_to_start_without_secret_key() -> None:
    result = load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_defaults_are_sqlite_and_the_embedded_filesystem_broker() -> None:
    result = load_settings(DEBUG="true")
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"].endswith("var/db.sqlite3")
    assert values["broker"] == "filesystem://"


def test_database_url_and_broker_come_from_the_environment() -> None:
    result = load_settings(
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://app:pw@db.internal:5432/faceproof",
        CELERY_BROKER_URL="redis://cache.internal:6379/2",
        ALLOWED_HOSTS="faceproof.example,www.faceproof.example",
    )
    values = json.loads(result.stdout)
    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "faceproof"
    assert values["broker"] == "redis://cache.internal:6379/2"
    assert values["hosts"] == ["faceproof.example", "www.faceproof.example"]


def test_manage_py_check_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


PRINT_WORKER_BOUNDS = """
import json
from deepfake_site.celery import app
print(json.dumps([app.conf.worker_max_tasks_per_child, app.conf.worker_max_memory_per_child]))
"""


def test_worker_children_are_replaced_after_bounded_tasks_and_memory() -> None:
    def bounds(**env: str) -> list[int]:
        result = subprocess.run(
            [sys.executable, "-c", PRINT_WORKER_BOUNDS],
            cwd=REPO_ROOT,
            env={**os.environ, "ENV_FILE": os.devnull, "SECRET_KEY": "x", **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return list(json.loads(result.stdout))

    tasks, kibibytes = bounds()
    assert tasks > 0 and kibibytes > 1_000_000, "defaults bound every child"
    assert bounds(
        CELERY_WORKER_MAX_TASKS_PER_CHILD="7", CELERY_WORKER_MAX_MEMORY_PER_CHILD="123456"
    ) == [7, 123456]


def test_time_limits_out_of_order_refuse_to_start() -> None:
    """A task still running past the broker's visibility timeout would be delivered twice."""
    assert load_settings(DEBUG="true").returncode == 0
    for env in (
        {"VIDEO_TIME_LIMIT_MAX": "4000"},  # above the visibility timeout
        {"CELERY_VISIBILITY_TIMEOUT": "900", "VIDEO_TIME_LIMIT_MAX": "1200"},
        {"CELERY_TASK_TIME_LIMIT": "2000"},  # a photo's limit above the longest video's
        {"CELERY_TASK_SOFT_TIME_LIMIT": "300"},  # not below the hard limit
    ):
        result = load_settings(DEBUG="true", **env)
        assert result.returncode != 0, env
        assert "time limits out of order" in result.stderr, env
