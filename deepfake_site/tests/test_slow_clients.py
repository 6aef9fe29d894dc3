"""Slow clients cannot stall the site: nginx reads each request in full before gunicorn sees it.

The probe that found it: 16 connections trickling a body a byte at a time held every gunicorn
thread, and the log-in page took 21 s. These tests run gunicorn and nginx as docker compose
does (nginx from the distribution, configured by deploy/nginx/) on free ports.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import require_service
from deepfake_site.tests.servers import free_port, get, nginx_binary, render_nginx_conf, serving

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 16
# Fewer threads than slow clients, as docker compose's 3 workers x 4 threads were.
GUNICORN_THREADS = 4
# What each request reached gunicorn with: the probe's trickled POSTs must never arrive.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s for=%({x-forwarded-for}i)s proto=%({x-forwarded-proto}i)s"


@dataclass
class Site:
    gunicorn_port: int
    nginx_port: int
    gunicorn_access_log: Path

    def gunicorn_saw(self) -> list[str]:
        return self.gunicorn_access_log.read_text().splitlines()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    nginx = nginx_binary()
    require_service(nginx is not None, "nginx (apt-get install nginx)")
    assert nginx is not None
    folder = tmp_path_factory.mktemp("site")
    gunicorn_port, nginx_port = free_port(), free_port()
    access_log = folder / "gunicorn-access.log"
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "deepfake_site.wsgi",
        "--bind",
        f"127.0.0.1:{gunicorn_port}",
        "--workers",
        "1",
        "--threads",
        str(GUNICORN_THREADS),
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        ACCESS_LOG_FORMAT,
    ]
    env = {
        **os.environ,
        "ENV_FILE": os.devnull,
        "DEBUG": "false",
        "SECRET_KEY": "slow-clients-test",
        "SECURE_SSL_REDIRECT": "false",
        "PROXY_COUNT": "1",
    }
    conf = render_nginx_conf(
        folder / "nginx", listen=f"127.0.0.1:{nginx_port}", upstream=f"127.0.0.1:{gunicorn_port}"
    )
    nginx_command = [nginx, "-p", str(conf.parent), "-e", str(conf.parent / "error.log")]
    with (
        serving(gunicorn, port=gunicorn_port, log=folder / "gunicorn.log", env=env),
        serving([*nginx_command, "-c", str(conf)], port=nginx_port, log=folder / "nginx.log"),
    ):
        yield Site(gunicorn_port, nginx_port, access_log)


class Tricklers:
    """Clients that send a POST's headers, then its body one byte every half second."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets = []
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            # Blocking, so that still_connected's MSG_DONTWAIT peek answers at once.
            client.settimeout(None)
            client.sendall(
                b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1000\r\n\r\nu"
            )
            self.sockets.append(client)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(0.5):
            for client in self.sockets:
                with contextlib.suppress(OSError):
                    client.send(b"x")

    def still_connected(self) -> int:
        """How many are still open, neither answered nor cut off."""
        count = 0
        for client in self.sockets:
            try:
                count += client.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
            except BlockingIOError:
                count += 1  # nothing to read: the server is still waiting for the body
            except OSError:
                pass
        return count

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for client in self.sockets:
            client.close()


@contextlib.contextmanager
def trickling(port: int) -> Iterator[Tricklers]:
    tricklers = Tricklers(port, SLOW_CLIENTS)
    try:
        time.sleep(1)  # every one of them is past its headers and into its body
        yield tricklers
    finally:
        tricklers.close()


def timed_get(port: int, path: str, timeout: float) -> tuple[int | None, float]:
    """(status, seconds); no status when the answer did not come within the timeout."""
    started = time.monotonic()
    try:
        status: int | None = get(port, path, timeout=timeout)
    except TimeoutError:
        status = None
    return status, time.monotonic() - started


def test_slow_clients_straight_to_gunicorn_stall_the_log_in_page(site: Site) -> None:
    """The problem, reproduced: without nginx the log-in page waits for the slow clients."""
    with trickling(site.gunicorn_port):
        status, seconds = timed_get(site.gunicorn_port, "/accounts/login/", timeout=3)
    assert status is None, f"answered {status} in {seconds:.2f} s despite the slow clients"
    assert seconds >= 3


def test_slow_clients_through_nginx_do_not_delay_other_requests(site: Site) -> None:
    seen_before = len(site.gunicorn_saw())
    with trickling(site.nginx_port) as tricklers:
        answers = [timed_get(site.nginx_port, "/accounts/login/", timeout=5) for _ in range(10)]
        still_trickling = tricklers.still_connected()
    time.sleep(0.5)  # anything nginx passed on as the slow clients left is in the log
    statuses = [status for status, _ in answers]
    slowest = max(seconds for _, seconds in answers)
    print(f"10 log-in pages beside {SLOW_CLIENTS} slow clients: slowest {slowest * 1000:.0f} ms")
    assert statuses == [200] * 10
    assert slowest < 0.5
    # nginx held every slow client itself: none was cut off, none reached gunicorn.
    assert still_trickling == SLOW_CLIENTS
    through_nginx = [line for line in site.gunicorn_saw()[seen_before:] if "for=127.0.0.1" in line]
    assert [line.split()[0] for line in through_nginx] == ["GET"] * 10


def test_nginx_passes_the_client_address_and_scheme(site: Site) -> None:
    assert get(site.nginx_port, "/accounts/login/?from=nginx") == 200
    seen = [line for line in site.gunicorn_saw() if line.startswith("GET /accounts/login/")]
    assert seen[-1].endswith("200 for=127.0.0.1 proto=http")


def send_body_of(port: int, length: int) -> int:
    """POST `length` bytes to the log-in page; the response status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # nginx answers 413 without reading the body
            chunk = b"x" * 1_000_000
            for sent in range(0, length, len(chunk)):
                client.sendall(chunk[: length - sent])
        status_line = client.makefile("rb").readline()
    return int(status_line.split()[1])


def test_nginx_takes_a_body_of_the_upload_limit_and_refuses_a_larger_one(site: Site) -> None:
    # 100 MB (VIDEO_MAX_BYTES, the larger upload limit) plus a multipart envelope reaches
    # Django, which refuses the POST for its own reasons (no CSRF token) before reading the
    # body; 110 MB never leaves nginx. The refusal came back as a 502 now and then when the
    # machine was busy (gunicorn closed the connection while nginx was still sending the
    # body), hence several tries.
    assert [send_body_of(site.nginx_port, 100_100_000) for _ in range(4)] == [403] * 4
    assert send_body_of(site.nginx_port, 110_000_000) == 413
