"""POSTs to receivers on the internet, made safe to aim at any URL an account typed in.

A webhook URL is chosen by whoever registers it, so the server must not become a way to
reach what only it can reach (SSRF: the cloud metadata service, the database, an admin
port). The host is resolved first and every address it resolves to must be public; the
connection then goes to the address that was checked, so a DNS answer that changes in
between (rebinding) cannot redirect it. Redirects are never followed (a 3xx is a failed
attempt), each socket operation has a short timeout, and only the first bytes of the answer
are read. Plain Python: no Django, so it can be tested and reasoned about alone.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# Enough of an answer to see that it is one; receivers' bodies are not kept.
_READ_AT_MOST = 1024


class AddressRefused(Exception):
    """The URL cannot be used: wrong scheme, unresolvable, or a non-public address."""


@dataclass(frozen=True)
class Answer:
    status: int | None  # None when no HTTP answer came back
    latency_ms: int
    error: str  # empty for a 2xx

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address the connection goes to


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why this URL cannot receive webhooks, or None; resolves its host to check it."""
    try:
        _target(url, allow_private=allow_private)
    except AddressRefused as refusal:
        return str(refusal)
    return None


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool
) -> Answer:
    """One POST, never raising: what the receiver answered, or why nothing came back."""
    started = time.monotonic()
    connection: http.client.HTTPConnection | None = None
    status: int | None = None
    try:
        target = _target(url, allow_private=allow_private)
        connection = _connection(target, timeout=timeout)
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(_READ_AT_MOST)
        status = response.status
        error = _status_problem(status)
    except AddressRefused as refusal:
        error = str(refusal)
    except TimeoutError:
        error = f"No answer within {timeout:g} s."
    except (OSError, http.client.HTTPException) as failure:
        error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
    finally:
        if connection is not None:
            connection.close()
    return Answer(status=status, latency_ms=round((time.monotonic() - started) * 1000), error=error)


def _status_problem(status: int) -> str:
    if 200 <= status < 300:
        return ""
    if 300 <= status < 400:
        return f"Answered {status}: redirects are not followed; register the final URL."
    return f"Answered {status}."


def _target(url: str, *, allow_private: bool) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("Use an http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("Leave credentials out of the URL; verify the signature instead.")
    host = parts.hostname
    if not host:
        raise AddressRefused("The URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("The URL's port is not a valid port number.") from None
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused(f"The host {host} cannot be resolved.") from None
    addresses = [str(entry[4][0]) for entry in found]
    if not allow_private:
        # Every address, not only the first: a name with one public and one private
        # address would otherwise reach the private one on some attempts.
        for address in addresses:
            if not _is_public(address):
                raise AddressRefused(
                    f"{host} resolves to {address}, a private, loopback or link-local address: "
                    "webhooks are sent to public addresses only."
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(parts.scheme, host, port, path, addresses[0])


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip.is_global and not ip.is_multicast


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Sends Host: the URL's name, but connects to the address that was checked."""

    def __init__(self, target: _Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate checked against the URL's name."""

    def __init__(self, target: _Target, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _connection(target: _Target, *, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return _PinnedHTTPConnection(target, timeout)
