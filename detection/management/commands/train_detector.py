"""Train, calibrate and write a real/fake classifier with its model card (detection.ml.training)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def default_data_dir() -> Path:
    default = Path(settings.BASE_DIR).parent / "shared" / "data" / "dfdc_faces"
    return Path(os.environ.get("DFDC_DIR", default))


class Command(BaseCommand):
    help = (
        "Train InceptionResnetV1 on labelled face crops (labels.csv + faces/, e.g. the DFDC "
        "crops) through the service's MTCNN path; checkpoint every epoch, early stopping on "
        "validation AUC, temperature calibration, thresholds at 1 %% / 5 %% FPR, and an fp16 "
        "checkpoint with its model card and plots."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            type=Path,
            help="folder with labels.csv and faces/ (default: $DFDC_DIR or ../shared/data/"
            "dfdc_faces)",
        )
        parser.add_argument("--input-size", type=int, choices=(160, 256), default=160)
        parser.add_argument("--epochs", type=int, default=4)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
        parser.add_argument("--limit", type=int, help="about this many crops (whole groups)")
        parser.add_argument("--val-fraction", type=float, default=0.15)
        parser.add_argument("--patience", type=int, default=2, help="epochs without a better AUC")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resume", action="store_true", help="continue the saved run")
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "models" / "faceproof-dfdc-160.pth",
            help="checkpoint to write; its card and plots go beside it",
        )
        parser.add_argument(
            "--workdir",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "training",
            help="prepared-crop cache and per-epoch training state",
        )
        parser.add_argument(
            "--threads",
            type=int,
            help="torch threads for training (default: torch's choice); on a busy machine 1 "
            "can be faster than 2, as OpenMP threads wait for each other",
        )
        parser.add_argument("--device", default=settings.DEEPFAKE_DEVICE, help="cpu or cuda")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.training import TrainingConfig, TrainingError, train

        for name in ("epochs", "batch_size", "patience"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        config = TrainingConfig(
            data_dir=options["data"] or default_data_dir(),
            output=options["output"],
            workdir=options["workdir"],
            input_size=options["input_size"],
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            learning_rate=options["lr"],
            val_fraction=options["val_fraction"],
            patience=options["patience"],
            limit=options["limit"],
            seed=options["seed"],
            threads=options["threads"],
            device=options["device"],
            resume=options["resume"],
            command=shlex.join(["python", *sys.argv]),
        )
        try:
            result = train(config, progress=not options["no_progress"], log=self.stdout.write)
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc
        validation = result.card["metrics"]["validation"]
        self.stdout.write(
            self.style.SUCCESS(
                f"validation AUC {validation['auc']:.4f}, accuracy at the flag threshold "
                f"{validation['accuracy']:.4f}, TPR@1%FPR {validation['tpr_at_1_fpr']:.4f}, "
                f"TPR@5%FPR {validation['tpr_at_5_fpr']:.4f}, ECE {validation['ece']:.4f}, "
                f"Brier {validation['brier']:.4f}; temperature "
                f"{result.card['calibration']['temperature']:.3f}"
            )
        )
