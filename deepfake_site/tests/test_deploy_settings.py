"""With DEBUG off and production variables set, Django's deployment checklist is clean."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_check_deploy_prints_no_warnings_in_production() -> None:
    overridden = {
        "DEBUG",
        "SECRET_KEY",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    env = {key: value for key, value in os.environ.items() if key not in overridden}
    env.update(
        ENV_FILE=os.devnull,
        DEBUG="false",
        SECRET_KEY="k3y-" + "x7Qp9Lm2Zr" * 6,
        ALLOWED_HOSTS="faceproof.example",
        CACHE_URL="redis://127.0.0.1:6379/9",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
