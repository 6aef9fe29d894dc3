"""Where the team's data sets live: never in the repository, found through DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


def shared_data_dir() -> Path:
    """$DATA_DIR, else the `shared/data` folder beside the repository."""
    default = Path(settings.BASE_DIR).parent / "shared" / "data"
    return Path(os.environ.get("DATA_DIR", default))


def sample_frames_dir() -> Path:
    """The 40 full-size sample frames when the data sets are here, else the repository's
    twelve downscaled test frames (enough for demos, smoke runs and a load test)."""
    shared = shared_data_dir() / "samples"
    return shared if shared.is_dir() else Path(settings.BASE_DIR) / "testdata" / "frames"


def face_cache_root() -> Path:
    """Where the data sets' faces are cached, decoded and cropped, for training and scoring."""
    return Path(settings.BASE_DIR) / "var" / "training" / "cache"
