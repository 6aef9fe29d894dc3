"""The signature on every delivery; the README shows receivers the same computation."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Tells a webhook secret apart from an API token at a glance.
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of "timestamp.body" under the endpoint's secret.

    The timestamp is inside the signed text so that a captured delivery cannot be replayed
    later with a fresh timestamp: receivers refuse old ones.
    """
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
