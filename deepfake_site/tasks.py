"""Tasks that belong to the service as a whole rather than to one app."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(ignore_result=False)
def worker_ping() -> dict[str, object]:
    """Answer with the worker's identity: proves a message went through the broker."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}
