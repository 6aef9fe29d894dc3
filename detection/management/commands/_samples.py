"""Where the shared sample frames live (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


def samples_dir() -> Path:
    default = Path(settings.BASE_DIR).parent / "shared" / "data" / "samples"
    return Path(os.environ.get("SAMPLES_DIR", default))
