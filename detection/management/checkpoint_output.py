"""Where the checkpoint-writing commands put their file."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError


def checkpoint_output(explicit: Path | None) -> Path:
    """The --output path, else DEEPFAKE_CHECKPOINT, never silently the shipped model.

    The default checkpoint is committed under models/; overwriting it would change what
    every clone serves, so doing that takes an explicit --output.
    """
    if explicit is not None:
        return explicit
    configured = Path(settings.DEEPFAKE_CHECKPOINT)
    shipped = Path(settings.BASE_DIR) / "models"
    if configured.resolve().is_relative_to(shipped.resolve()):
        raise CommandError(
            f"DEEPFAKE_CHECKPOINT is the shipped model {configured}; write elsewhere with "
            "--output var/models/NAME.pth and point DEEPFAKE_CHECKPOINT at it."
        )
    return configured
