"""The README's signature check, run as written against a real signed delivery."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import REPO_ROOT
from moderation.tests.factories import SubmissionFactory, UserFactory
from webhooks import services
from webhooks.tests.conftest import Receiver


def readme_verifier() -> Callable[[str, dict[str, str], bytes], bool]:
    readme = (REPO_ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?def faceproof_signature_ok.*?)```", readme, re.DOTALL)
    assert snippet is not None, "the README shows how to verify a delivery"
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), "README.md", "exec"), namespace)  # noqa: S102
    verifier: Callable[[str, dict[str, str], bytes], bool] = namespace["faceproof_signature_ok"]
    return verifier


@pytest.mark.django_db
@pytest.mark.usefixtures("private_addresses_allowed")
def test_the_readme_snippet_accepts_a_real_delivery_and_refuses_tampering(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    platform = UserFactory.create(username="platform")
    endpoint = services.webhook_endpoint_create(
        owner=platform, url=receiver.url, events=["submission.analysed"]
    )
    [delivery] = services.submission_analysed_notify(
        submission=SubmissionFactory.create(uploader=platform)
    )
    services.webhook_delivery_attempt(delivery_id=delivery.id)
    [request] = receiver.requests
    verify = readme_verifier()

    assert verify(endpoint.secret, request.headers, request.body)
    assert not verify("whsec_another-secret", request.headers, request.body)
    assert not verify(endpoint.secret, request.headers, request.body.replace(b"}", b" }", 1))
    old = {**request.headers, "X-Faceproof-Timestamp": str(int(time.time()) - 3600)}
    assert not verify(endpoint.secret, old, request.body)
