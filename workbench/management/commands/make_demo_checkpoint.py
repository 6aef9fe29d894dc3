"""Write the untrained demo/test checkpoint (published shape, input-dependent output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from detection.management.checkpoint_output import checkpoint_output
from workbench.shared_data import sample_frames_dir


class Command(BaseCommand):
    help = (
        "Write an UNTRAINED checkpoint of the published shape: seeded random weights with "
        "BatchNorm statistics recalibrated on real face crops from the sample frames, plus "
        "its model card (trained: false). For tests and demos only: its scores mean nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            help="default: settings.DEEPFAKE_CHECKPOINT unless that is the shipped model",
        )
        parser.add_argument(
            "--samples",
            type=Path,
            help="folder of real_frame_*.jpg (default: $DATA_DIR/samples, else the test frames)",
        )
        parser.add_argument("--frames", type=int, default=20, help="real frames to use")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.classifier import save_checkpoint
        from detection.ml.pipeline import Analyzer, PipelineConfig
        from workbench.demo_checkpoint import (
            demo_model_card,
            demo_state_dict,
            real_face_crops,
        )

        output = checkpoint_output(options["output"])
        folder = options["samples"] or sample_frames_dir()
        frames = sorted(folder.glob("real_frame_*.jpg"))[: options["frames"]]
        if not frames:
            raise CommandError(f"no real_frame_*.jpg in {folder} (set DATA_DIR or --samples)")
        crops = real_face_crops(frames)
        if len(crops) < 2:
            raise CommandError(f"found {len(crops)} face(s) in {len(frames)} frames; need 2+")
        state_dict = demo_state_dict(crops, seed=options["seed"])
        card = demo_model_card(crop_count=len(crops), seed=options["seed"], source=str(folder))
        save_checkpoint(output, state_dict, card)

        # Prove the point of the recalibration: scores differ from face to face.
        scores = Analyzer(PipelineConfig(checkpoint=output)).classifier.classify(crops)
        probabilities = scores.probabilities
        self.stdout.write(
            self.style.SUCCESS(f"wrote {output} (untrained demo model, {len(crops)} crops)")
            + f"\nP(fake) on its calibration faces: min {probabilities.min():.3f}, "
            f"max {probabilities.max():.3f}, std {probabilities.std():.3f}"
        )
