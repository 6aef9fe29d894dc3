"""The embedded default database (SQLite) with several writers at once: the web processes
and the worker processes write to one file, and none of them may fail with "database is
locked". Both tests use SQLite files of their own, whatever database the rest of the suite
uses, because the embedded default is what `make run` serves.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO_ROOT, TEST_FRAMES, WorkerProcess

BURST = 37
FINAL_STATUSES = ("done", "no_face", "failed")


def photo(number: int) -> bytes:
    """A distinct photo with faces per upload: a test frame, cut a few pixels differently."""
    frames = sorted(TEST_FRAMES.glob("*.jpg"))
    frame = Image.open(frames[number % len(frames)])
    shift = number // len(frames) + 1
    buffer = io.BytesIO()
    frame.crop((shift, shift, frame.width, frame.height)).save(buffer, format="JPEG")
    return buffer.getvalue()


def multipart_upload(url: str, token: str, data: bytes, name: str) -> int:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    # Our own server on 127.0.0.1.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=body,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return int(response.status)


# Two threads on the embedded database, in the order that deadlocks SQLite's default
# transactions: one reads and then writes while the other holds a write and commits.
TWO_WRITERS = """
import os, sys, threading, time
import django
django.setup()
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction

call_command("migrate", "auth", verbosity=0)
meeting = threading.Barrier(2)
errors = []

def meet():
    try:
        meeting.wait(timeout=1)
    except threading.BrokenBarrierError:
        pass  # with the write lock taken up front, the other waits at its start instead

def reads_then_writes():
    try:
        with transaction.atomic():
            list(Group.objects.all())
            meet()
            time.sleep(0.2)
            Group.objects.create(name="reader")
    except Exception as error:
        errors.append(repr(error))
    finally:
        connection.close()

def writes_then_commits():
    try:
        with transaction.atomic():
            Group.objects.create(name="writer")
            meet()
            time.sleep(0.5)
    except Exception as error:
        errors.append(repr(error))
    finally:
        connection.close()

threads = [threading.Thread(target=reads_then_writes), threading.Thread(target=writes_then_commits)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors, sorted(Group.objects.values_list("name", flat=True)))
"""


def test_two_writers_on_the_embedded_database_queue_instead_of_failing(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'two.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
        "SECRET_KEY": "two-writers",
    }
    result = subprocess.run(
        [sys.executable, "-c", TWO_WRITERS],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[] ['reader', 'writer']", result.stdout + result.stderr


@pytest.mark.slow
def test_a_burst_of_uploads_on_sqlite_never_fails_an_attempt(
    tmp_path: Path,
    start_gunicorn: Callable[..., str],
    start_worker: Callable[..., WorkerProcess],
    demo_checkpoint: Path,
) -> None:
    database = tmp_path / "burst.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_DIR": str(tmp_path / "broker"),
        "CACHE_URL": "locmemcache://",
        "RATELIMIT_ENABLE": "false",
        # One account sends the whole burst.
        "UPLOAD_MAX_IN_FLIGHT": str(BURST),
        "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
        "TORCH_NUM_THREADS": "1",
        "SECRET_KEY": "burst-test-key",
    }
    run_env = {**os.environ, **env}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=run_env,
        check=True,
    )
    token = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            "from django.contrib.auth.models import User; "
            "from deepfake_site.services import api_token_rotate; "
            "print(api_token_rotate(user=User.objects.create(username='burst')))",
        ],
        cwd=REPO_ROOT,
        env=run_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = start_gunicorn(env, workers=2, threads=4)
    start_worker(queues="inference,celery", concurrency=2, env=env)

    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(BURST)

    def upload(number: int) -> None:
        barrier.wait()
        try:
            url = f"http://{server}/api/v1/submissions/"
            statuses.append(multipart_upload(url, token, photo(number), f"burst-{number}.jpg"))
        except BaseException as error:  # reported below with the others
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(number,)) for number in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and statuses == [202] * BURST

    deadline = time.monotonic() + 240
    rows: list[tuple[str, int, str]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(database, timeout=30) as connection:
            rows = connection.execute(
                "SELECT status, attempts, failure_reason FROM detection_submission"
            ).fetchall()
        if len(rows) == BURST and all(status in FINAL_STATUSES for status, _, _ in rows):
            break
        time.sleep(1)
    assert len(rows) == BURST
    assert {status for status, _, _ in rows} <= {"done", "no_face"}, rows
    assert [attempts for _, attempts, _ in rows] == [1] * BURST, "an attempt failed and was retried"
