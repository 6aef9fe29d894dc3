"""gunicorn and nginx as real processes for the tests: on free ports, under a test's folder."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import REPO_ROOT

RENDER = REPO_ROOT / "deploy" / "nginx" / "render.py"


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which an unprivileged user's PATH often lacks.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render_nginx_conf(prefix: Path, *, listen: str, upstream: str) -> Path:
    """The configuration CI checks, written by the same script (see deploy/nginx/render.py)."""
    result = subprocess.run(
        [
            sys.executable,
            str(RENDER),
            "--prefix",
            str(prefix),
            "--listen",
            listen,
            "--upstream",
            upstream,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    """GET a path from 127.0.0.1:port: the response status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def get(port: int, path: str, timeout: float = 5) -> int:
    """GET a path from 127.0.0.1:port; the response status."""
    return fetch(port, path, timeout)[0]


@contextmanager
def serving(
    command: list[str], *, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; ready once it answers a GET of /accounts/login/."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited at start:\n{log.read_text()}")
            try:
                if get(port, "/accounts/login/", timeout=2) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} not ready in 60 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(20)
