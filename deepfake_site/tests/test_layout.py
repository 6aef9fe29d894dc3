"""The project's layout rules: which package may import which, and one home per concept."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import REPO_ROOT

SERVING_APPS = ("deepfake_site", "detection", "moderation", "webhooks")


def modules(package: str, *, with_tests: bool = False) -> Iterator[Path]:
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        if with_tests or "tests" not in path.relative_to(REPO_ROOT).parts:
            yield path


def imported_names(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def offenders(package: str, forbidden: str, *, with_tests: bool = False) -> list[str]:
    return [
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for path in modules(package, with_tests=with_tests)
        for name in imported_names(path)
        if name == forbidden or name.startswith(f"{forbidden}.")
    ]


def test_serving_apps_never_import_the_workbench() -> None:
    # Tests included: a serving app's tests must pass where only the service is installed.
    assert [o for app in SERVING_APPS for o in offenders(app, "workbench", with_tests=True)] == []


def test_serving_apps_run_without_the_workbench_loaded() -> None:
    code = (
        "import os, sys, django; os.environ.setdefault('SECRET_KEY', 'layout-test'); "
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'deepfake_site.settings'; django.setup(); "
        "import deepfake_site.urls, detection.tasks, detection.services, detection.admin, "
        "detection.ml.pipeline, moderation.services, moderation.admin, webhooks.services, "
        "webhooks.tasks, webhooks.admin; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'workbench' "
        "and m not in ('workbench', 'workbench.apps')); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_ml_package_never_imports_django() -> None:
    assert offenders("detection/ml", "django", with_tests=True) == []


def test_model_cards_are_read_and_written_only_by_the_card_module() -> None:
    # A card is the checkpoint's name with .json; anything else building that path reads or
    # writes cards around the module that validates them.
    card_module = REPO_ROOT / "detection" / "ml" / "card.py"
    elsewhere = [
        str(path.relative_to(REPO_ROOT))
        for package in (*SERVING_APPS, "workbench")
        for path in modules(package)
        if path != card_module and 'with_suffix(".json")' in path.read_text()
    ]
    assert elsewhere == []
