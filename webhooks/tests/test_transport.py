"""Outgoing webhook requests: never to private addresses unless allowed, no redirects, short
timeouts, and every failure reported rather than raised."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from unittest import mock

import pytest

from webhooks import transport
from webhooks.tests.conftest import Receiver

HEADERS = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://224.0.0.1/hook",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url: str) -> None:
    problem = transport.url_problem(url, allow_private=False)
    assert problem is not None and "public addresses only" in problem
    answer = transport.post(url, b"{}", HEADERS, timeout=1, allow_private=False)
    assert answer.status is None and "public addresses only" in answer.error


def test_a_name_with_any_private_address_is_refused() -> None:
    found = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443)),
    ]
    with mock.patch("socket.getaddrinfo", return_value=found):
        problem = transport.url_problem("https://mixed.example/hook", allow_private=False)
    assert problem is not None and "10.0.0.7" in problem


def test_the_connection_goes_to_the_address_that_was_checked(
    start_receiver: Callable[..., Receiver],
) -> None:
    """A later DNS answer (rebinding) cannot move the request elsewhere."""
    receiver = start_receiver()
    port = int(receiver.url.split(":")[2].split("/")[0])
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.9.9.9"])  # the name's first answer, then another

    def resolve(host: str, *args: object, **kwargs: object) -> object:
        if host == "hooks.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch("socket.getaddrinfo", side_effect=resolve):
        answer = transport.post(
            f"http://hooks.example:{port}/hooks", b"{}", HEADERS, timeout=2, allow_private=True
        )
    assert answer.ok, answer
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"hooks.example:{port}"
    assert next(answers) == "10.9.9.9"  # the name was resolved once


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https:///hook", "no host"),
        ("https://example.com:99999/hook", "port"),
        ("https://no-such-host.invalid/hook", "cannot be resolved"),
    ],
)
def test_urls_that_cannot_receive_say_why(url: str, says: str) -> None:
    problem = transport.url_problem(url, allow_private=False)
    assert problem is not None and says in problem


def test_loopback_is_reached_when_the_setting_allows_it(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    answer = transport.post(receiver.url, b'{"a":1}', HEADERS, timeout=2, allow_private=True)
    assert (answer.status, answer.error, answer.ok) == (200, "", True)
    assert receiver.requests[0].body == b'{"a":1}'
    assert receiver.requests[0].path == "/hooks/faceproof"


def test_redirects_are_not_followed(start_receiver: Callable[..., Receiver]) -> None:
    target = start_receiver()
    redirecting = start_receiver(status=302, location=target.url)
    answer = transport.post(redirecting.url, b"{}", HEADERS, timeout=2, allow_private=True)
    assert answer.status == 302 and not answer.ok
    assert "redirects are not followed" in answer.error
    assert target.requests == []


def test_an_error_status_is_a_failed_attempt(start_receiver: Callable[..., Receiver]) -> None:
    receiver = start_receiver(status=500)
    answer = transport.post(receiver.url, b"{}", HEADERS, timeout=2, allow_private=True)
    assert (answer.status, answer.ok, answer.error) == (500, False, "Answered 500.")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_receiver_that_never_answers_times_out(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/hook"
    answer = transport.post(url, b"{}", HEADERS, timeout=0.5, allow_private=True)
    assert answer.status is None
    assert answer.error == "No answer within 0.5 s."
    assert answer.latency_ms < 5000


def test_a_closed_port_is_reported_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = transport.post(
        f"http://127.0.0.1:{port}/hook", b"{}", HEADERS, timeout=1, allow_private=True
    )
    assert answer.status is None and "ConnectionRefusedError" in answer.error
