"""The README documents every environment variable the settings read."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def test_every_setting_read_from_the_environment_is_in_the_readme_table() -> None:
    settings_source = (REPO_ROOT / "deepfake_site" / "settings.py").read_text()
    variables = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    readme = (REPO_ROOT / "README.md").read_text()
    table_rows = [line for line in readme.splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"`([A-Z_]+)`", "\n".join(table_rows)))
    assert variables, "the settings read variables through django-environ"
    assert sorted(variables - documented) == []
