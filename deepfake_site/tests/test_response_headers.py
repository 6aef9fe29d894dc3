"""What every response tells the browser: private pages are never stored, and a
Content-Security-Policy that allows scripts and styles from this site's files only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from conftest import REPO_ROOT
from deepfake_site.services import api_token_rotate
from detection.tests.factories import SubmissionFactory, make_analysed
from moderation import services
from moderation.tests.factories import ModeratorFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator_client(client: Client) -> tuple[Client, User]:
    moderator = ModeratorFactory.create()
    client.force_login(moderator)
    return client, moderator


def private_urls(user: User) -> list[str]:
    """A page of every kind behind log-in, reachable by this (moderator) user."""
    submission = make_analysed(SubmissionFactory.create(uploader=user))
    case = services.review_case_open(submission=submission)
    assert case is not None
    return [
        reverse("home"),
        reverse("detection:api-token"),
        reverse("detection:upload"),
        reverse("detection:submission-list"),
        reverse("detection:submission-detail", args=[submission.id]),
        reverse("detection:submission-status", args=[submission.id]),
        reverse("detection:model-card"),
        reverse("moderation:queue"),
        reverse("moderation:case-detail", args=[case.pk]),
        reverse("moderation:decision-log"),
        reverse("moderation:decision-log-csv"),
        reverse("moderation:metrics"),
        reverse("password_change"),
    ]


def is_never_stored(cache_control: str) -> bool:
    directives = {part.strip() for part in cache_control.split(",")}
    return {"no-store", "private"} <= directives


def test_every_page_behind_log_in_is_never_stored(
    moderator_client: tuple[Client, User],
) -> None:
    client, moderator = moderator_client
    for url in private_urls(moderator):
        response = client.get(url)
        assert response.status_code == 200, url
        assert is_never_stored(response.get("Cache-Control", "")), (url, response.headers)


def test_the_api_token_page_showing_a_new_key_is_never_stored(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.post(reverse("detection:api-token"))
    assert 'id="api-token-key"' in response.content.decode(), "the page shows the new key"
    assert is_never_stored(response["Cache-Control"])


def test_api_answers_to_a_token_are_never_stored(client: Client) -> None:
    user = UserFactory.create()
    submission = make_analysed(SubmissionFactory.create(uploader=user))
    token = api_token_rotate(user=user)
    for url in (
        reverse("api:submission-list"),
        reverse("api:submission-detail", args=[submission.id]),
    ):
        response = client.get(url, headers={"Authorization": f"Token {token}"})
        assert response.status_code == 200
        assert is_never_stored(response["Cache-Control"]), url


def test_private_media_keep_their_own_private_hour(client: Client) -> None:
    user = UserFactory.create()
    submission = make_analysed(SubmissionFactory.create(uploader=user))
    client.force_login(user)
    response = client.get(reverse("detection:submission-thumbnail", args=[submission.id]))
    assert response["Cache-Control"] == "private, max-age=3600"


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for directive in header.split(";"):
        name, *values = directive.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize(
    "url", ["/", "/accounts/login/", "/api/docs/", "/no-such-page/", "/admin/login/"]
)
def test_pages_carry_a_content_security_policy_without_inline_code(
    client: Client, url: str
) -> None:
    policy = csp_directives(client.get(url)["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]


# Markup the policy would block: a <script> or <style> element with code in it, a style
# attribute, an inline event handler or a javascript: link.
INLINE_CODE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE
)
TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}")


def test_templates_hold_no_inline_scripts_styles_or_handlers() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0)}"
        for path in sorted(Path(REPO_ROOT / "templates").rglob("*.html"))
        for match in INLINE_CODE.finditer(TEMPLATE_COMMENT.sub("", path.read_text()))
    ]
    assert offenders == []


def test_api_docs_load_their_start_up_script_from_a_url(client: Client) -> None:
    page = client.get(reverse("api-docs")).content.decode()
    assert not INLINE_CODE.search(page)
    script = re.search(r'<script src="([^"]*script=[^"]*)"', page)
    assert script is not None
    response = client.get(script.group(1).replace("&amp;", "&"))
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in response.content.decode()
