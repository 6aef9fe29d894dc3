"""Moderators' decisions as a labelled face set, to measure (and train) the model on them."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from moderation.selectors import decided_faces


class Command(BaseCommand):
    help = (
        "Write the faces of decided cases as a face set: faces/*.png and labels.csv "
        "(file,label,group,source), the format evaluate_detector and train_detector read. "
        "Cleared photos give their good faces as real; confirmed photos give the good face "
        "the model found most suspicious as fake (moderators judge photos, not faces). "
        "Faces too poor to judge and undecided cases are left out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, required=True, help="a new or empty folder")
        parser.add_argument(
            "--since", type=date.fromisoformat, help="only decisions from this day (YYYY-MM-DD)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        output: Path = options["output"]
        if output.exists() and any(output.iterdir()):
            raise CommandError(f"{output} is not empty; choose a new folder")
        since: date | None = options["since"]
        faces = decided_faces(
            since=timezone.make_aware(datetime.combine(since, datetime.min.time()))
            if since
            else None
        )
        (output / "faces").mkdir(parents=True, exist_ok=True)
        with (output / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "label", "group", "source"])
            for face in faces:
                name = f"{face.submission_id}-{face.index}.png"
                with default_storage.open(face.crop_name, "rb") as crop:
                    (output / "faces" / name).write_bytes(crop.read())
                writer.writerow([name, face.label, face.group, face.source])
        real = sum(face.label == "real" for face in faces)
        self.stdout.write(
            self.style.SUCCESS(
                f"wrote {len(faces)} faces ({real} real, {len(faces) - real} fake) to {output}"
            )
        )
