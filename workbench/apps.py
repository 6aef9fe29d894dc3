from __future__ import annotations

from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    """Makes and measures models and the service; the serving apps never import it."""

    name = "workbench"
    verbose_name = "Workbench"
