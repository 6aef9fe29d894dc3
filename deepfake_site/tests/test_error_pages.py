"""Errors with DEBUG off, as `make run` and production run: the site's own pages that say
what to do next, never Django's debug pages, and one log line for a refused request."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from conftest import REPO_ROOT
from deepfake_site.tests.servers import fetch, free_port, serving
from detection.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Django's technical 404 page lists every URL pattern under this heading.
URL_LIST = "Django tried these URL patterns"


def test_not_found_shows_the_branded_page_and_no_url_list(client: Client) -> None:
    response = client.get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in page
    assert "/static/css/site.css" in page
    assert URL_LIST not in page and "api/v1/" not in page
    assert 'href="/accounts/login/"' in page  # what to do next


def test_signed_in_not_found_offers_the_users_submissions(client: Client) -> None:
    client.force_login(UserFactory.create())
    page = client.get("/no-such-page/").content.decode()
    assert 'href="/submissions/"' in page


def test_forbidden_shows_the_branded_page_and_who_can_grant_access(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get("/moderation/")
    page = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in page and "/static/css/site.css" in page
    assert "ask an administrator" in page


def test_expired_form_says_to_reload_it() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "a", "password": "b"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "This form has expired" in page and "reload the page" in page


def test_server_error_page_has_the_site_look_and_no_menu() -> None:
    # Django renders it without a request: the page must not need one.
    response = server_error(RequestFactory().get("/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page
    assert "/static/css/site.css" in page and "try again in a moment" in page
    assert "Log in" not in page


@pytest.fixture
def console_output() -> Iterator[io.StringIO]:
    """What the log handlers that print would print, whatever logger a record starts at."""
    output = io.StringIO()
    streams = [
        handler
        for logger in (logging.getLogger("django.request"), *_ancestors("django.request"))
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler
    ]
    previous = [handler.setStream(output) for handler in streams]
    yield output
    for handler, stream in zip(streams, previous, strict=True):
        handler.setStream(stream)


def _ancestors(name: str) -> Iterator[logging.Logger]:
    *parents, _ = name.split(".")
    for depth in range(len(parents), 0, -1):
        yield logging.getLogger(".".join(parents[:depth]))
    yield logging.getLogger()


@pytest.mark.parametrize("debug", [False, True])
def test_forbidden_logs_one_line_without_a_traceback(
    client: Client,
    settings: Any,
    console_output: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    settings.DEBUG = debug
    client.force_login(UserFactory.create())
    console_output.seek(0)  # only what the request itself logs
    console_output.truncate()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert client.get("/moderation/").status_code == 403
    assert [record.getMessage() for record in caplog.records] == [
        "Forbidden (Permission denied): /moderation/"
    ]
    printed = console_output.getvalue().splitlines()
    assert len(printed) == 1 and printed[0].endswith("Forbidden (Permission denied): /moderation/")


def test_server_errors_keep_their_traceback(console_output: io.StringIO) -> None:
    try:
        raise RuntimeError("a real fault")
    except RuntimeError:
        logging.getLogger("django.request").exception(
            "Internal Server Error: /", extra={"status_code": 500}
        )
    assert "Traceback" in console_output.getvalue()


@pytest.fixture(scope="module")
def made_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .env `make .env` writes for `make run`, made in an empty folder."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    folder = tmp_path_factory.mktemp("make-env")
    shutil.copy(REPO_ROOT / ".env.example", folder / ".env.example")
    subprocess.run(
        [make, "--silent", "-C", str(folder), "-f", str(REPO_ROOT / "Makefile"), ".env"],
        capture_output=True,
        check=True,
    )
    return folder / ".env"


SETTINGS_AS_JSON = """
import json
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECRET_KEY"
)}))
"""


def environment_reading(env_file: Path) -> dict[str, str]:
    """This process's environment, less what the file sets: variables already set win."""
    from_file = {line.split("=", 1)[0] for line in env_file.read_text().splitlines() if "=" in line}
    env = {key: value for key, value in os.environ.items() if key not in from_file}
    return {**env, "ENV_FILE": str(env_file)}


def settings_from_env_file(env_file: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_AS_JSON],
        cwd=REPO_ROOT,
        env={**environment_reading(env_file), "DJANGO_SETTINGS_MODULE": "deepfake_site.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    values: dict[str, Any] = json.loads(result.stdout)
    return values


def test_make_env_runs_with_debug_off_on_plain_http(made_env: Path) -> None:
    values = settings_from_env_file(made_env)
    assert values["DEBUG"] is False
    # 127.0.0.1 speaks plain HTTP: no redirect to HTTPS, cookies sent without it.
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECRET_KEY"] != "change-me" and len(values["SECRET_KEY"]) >= 50


@pytest.mark.slow
def test_make_run_serves_pages_error_pages_and_static_files_with_debug_off(
    made_env: Path, tmp_path: Path
) -> None:
    """gunicorn as the Procfile starts it, on the .env `make run` writes."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "deepfake_site.wsgi"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
    # `serving` waits for the log-in page to answer 200: no redirect to HTTPS.
    with serving(
        command, port=port, log=tmp_path / "gunicorn.log", env=environment_reading(made_env)
    ):
        status, page = fetch(port, "/no-such-page/")
        assert status == 404
        assert "<h1>Not found</h1>" in page and URL_LIST not in page
        # WhiteNoise serves the site's files and the apps' (admin, Swagger UI) without
        # collectstatic.
        for path in (
            "/static/css/site.css",
            "/static/js/htmx.min.js",
            "/static/admin/css/base.css",
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        ):
            assert fetch(port, path)[0] == 200, path


def test_the_favicon_is_found(client: Client) -> None:
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain and response.redirect_chain[0][0].endswith("favicon.ico")
