"""The docker compose file stays valid (there is no Docker engine here to run it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT


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


def test_docker_compose_config_is_valid_and_defines_the_services() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "config", "--services"],
        cwd=REPO_ROOT,
        env={**os.environ, "SECRET_KEY": "compose-config-check"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {"web", "worker", "redis", "postgres"} <= set(result.stdout.split())


def test_redis_keeps_an_append_only_file_in_compose() -> None:
    assert "--appendonly yes" in (REPO_ROOT / "docker-compose.yml").read_text()
