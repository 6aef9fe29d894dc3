"""Where the team's data sets live: never in the repository, found through DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


def shared_data_dir() -> Path:
    """$DATA_DIR, else the `shared/data` folder beside the repository."""
    default = Path(settings.BASE_DIR).parent / "shared" / "data"
    return Path(os.environ.get("DATA_DIR", default))
