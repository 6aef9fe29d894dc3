"""The docker compose file stays valid (there is no Docker engine here to run it), and nginx's
configuration passes `nginx -t`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, require_service
from deepfake_site.tests.servers import nginx_binary, render_nginx_conf


def compose_command() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_config() -> dict[str, Any]:
    """The compose file as `docker compose config` resolves it."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "config"],
        cwd=REPO_ROOT,
        env={**os.environ, "SECRET_KEY": "compose-config-check"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_docker_compose_config_is_valid_and_defines_the_services() -> None:
    services = compose_config()["services"]
    assert {"nginx", "web", "worker", "redis", "postgres"} <= set(services)


def test_only_nginx_is_published_and_it_proxies_to_web() -> None:
    services = compose_config()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}
    nginx = services["nginx"]
    assert nginx["environment"]["FACEPROOF_UPSTREAM"] == "web:8000"
    template = REPO_ROOT / "deploy" / "nginx" / "faceproof.conf.template"
    assert any(str(template) in str(volume) for volume in nginx["volumes"])
    # Django then counts the client's address, not nginx's, for lockouts and upload limits.
    assert services["web"]["environment"]["PROXY_COUNT"] == "1"


def test_nginx_configuration_passes_nginx_t(tmp_path: Path) -> None:
    nginx = nginx_binary()
    require_service(nginx is not None, "nginx (apt-get install nginx)")
    assert nginx is not None
    conf = render_nginx_conf(tmp_path, listen="127.0.0.1:8080", upstream="127.0.0.1:8000")
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_redis_keeps_an_append_only_file_in_compose() -> None:
    assert "--appendonly yes" in (REPO_ROOT / "docker-compose.yml").read_text()


def gunicorn_setting(name: str, **env: str) -> str:
    """A setting as gunicorn resolves it from the command line and ./gunicorn.conf.py."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--print-config", "deepfake_site.wsgi"],
        cwd=REPO_ROOT,
        env={**os.environ, "ENV_FILE": os.devnull, "SECRET_KEY": "gunicorn-config", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    values = dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    return values[name.ljust(34)].strip()


def test_gunicorn_takes_forwarded_headers_from_any_address_only_behind_a_proxy() -> None:
    # In compose nginx's address is not known in advance, and nothing else can reach web.
    assert gunicorn_setting("forwarded_allow_ips", PROXY_COUNT="1") == "['*']"
    assert gunicorn_setting("forwarded_allow_ips", PROXY_COUNT="0") == "['127.0.0.1', '::1']"
