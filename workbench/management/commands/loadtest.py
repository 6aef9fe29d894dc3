"""Load-test the whole service on this machine (logic: workbench.loadtest.runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.loadtest.runner import LoadTestConfig, LoadTestError, loadtest_run
from workbench.shared_data import sample_frames_dir


class Command(BaseCommand):
    help = (
        "Start gunicorn, a Celery worker pool and beat on a fresh PostgreSQL database and a "
        "dedicated Redis database, drive them with locust (workbench/loadtest/locustfile.py) on "
        "127.0.0.1, wait for the accepted uploads to finish, and print throughput, latency, "
        "errors and how many submissions were lost or duplicated (exit status 1 if any)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=4, help="simulated API clients")
        parser.add_argument("--spawn-rate", type=float, default=2, help="users started per s")
        parser.add_argument("--duration", type=int, default=60, help="seconds of traffic")
        parser.add_argument("--gunicorn-workers", type=int, default=2)
        parser.add_argument("--gunicorn-threads", type=int, default=4)
        parser.add_argument(
            "--celery-concurrency", type=int, default=2, help="worker pool processes"
        )
        parser.add_argument(
            "--threads", type=int, default=1, help="torch threads per worker process"
        )
        parser.add_argument(
            "--drain",
            type=int,
            default=180,
            help="seconds to wait after the traffic for accepted uploads to finish",
        )
        parser.add_argument(
            "--database-url",
            default="postgres://postgres@127.0.0.1:5432/faceproof_load",
            help="PostgreSQL database to DROP and create afresh",
        )
        parser.add_argument(
            "--redis-url",
            default="redis://127.0.0.1:6379/9",
            help="Redis database (flushed) for the broker, results and cache",
        )
        parser.add_argument(
            "--checkpoint",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "loadtest" / "demo.pth",
            help="classifier checkpoint; the untrained demo model is written here if missing",
        )

        parser.add_argument(
            "--runs-dir",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "loadtest" / "runs",
            help="where each run keeps its logs, locust CSVs and report.json",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint: Path = options["checkpoint"]
        if not checkpoint.exists():
            # A fixed demo model, so that the numbers do not depend on the shipped weights.
            call_command("make_demo_checkpoint", output=checkpoint)
        config = LoadTestConfig(
            users=options["users"],
            spawn_rate=options["spawn_rate"],
            duration_seconds=options["duration"],
            gunicorn_workers=options["gunicorn_workers"],
            gunicorn_threads=options["gunicorn_threads"],
            celery_concurrency=options["celery_concurrency"],
            torch_threads=options["threads"],
            drain_seconds=options["drain"],
            database_url=options["database_url"],
            redis_url=options["redis_url"],
            checkpoint=checkpoint.resolve(),
            samples_dir=sample_frames_dir(),
            runs_dir=options["runs_dir"],
        )
        try:
            report = loadtest_run(config, progress=self.stderr.write)
        except LoadTestError as error:
            raise CommandError(str(error)) from error
        self.stdout.write("\n".join(report.lines()))
        if report.lost or report.duplicated:
            raise CommandError(
                f"{report.lost} submission(s) lost and {report.duplicated} duplicated"
            )
