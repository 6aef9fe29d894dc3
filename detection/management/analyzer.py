"""The pipeline a management command runs: the site's settings, with its overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from detection.pipeline_config import pipeline_config_from_settings

if TYPE_CHECKING:
    from detection.ml.pipeline import Analyzer


def command_analyzer(*, checkpoint: Path | None = None, runtime: str | None = None) -> Analyzer:
    """The loaded pipeline; a missing or broken checkpoint is a CommandError that says why."""
    from detection.ml.classifier import CheckpointError
    from detection.ml.pipeline import get_analyzer

    config = pipeline_config_from_settings()
    if checkpoint is not None:
        config = dataclasses.replace(config, checkpoint=checkpoint)
    if runtime is not None:
        config = dataclasses.replace(config, runtime=runtime)
    try:
        return get_analyzer(config)
    except CheckpointError as exc:
        raise CommandError(str(exc)) from exc
