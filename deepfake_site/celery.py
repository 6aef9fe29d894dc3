"""The Celery application: configured from Django settings (the CELERY_ namespace)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")

app = Celery("deepfake_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_filesystem_broker_folders(sender: Celery, **_: object) -> None:
    """kombu's filesystem transport and Celery's file result backend expect their folders."""
    options = sender.conf.broker_transport_options or {}
    folders = [
        options[key]
        for key in ("data_folder_in", "data_folder_out", "control_folder")
        if key in options
    ]
    result_backend = sender.conf.result_backend or ""
    if result_backend.startswith("file://"):
        folders.append(result_backend.removeprefix("file://"))
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
