"""Load the configured model once, so that no analysis pays for it: the ONNX export."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from detection.management.analyzer import command_analyzer


class Command(BaseCommand):
    help = (
        "Load the configured classifier and, where it runs in ONNX Runtime, export its graph "
        "into DEEPFAKE_MODEL_CACHE (once per model version, about 15 s), so that the workers "
        "start with it ready. `make run` and the Docker image run this before serving."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        analyzer = command_analyzer()
        model = analyzer.model
        self.stdout.write(
            self.style.SUCCESS(
                f"model {model.name} ({model.version}) ready in "
                f"{time.perf_counter() - started:.1f} s"
            )
        )
