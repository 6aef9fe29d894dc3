"""The two ends of a training run on a lent accelerator machine (`workbench.training.accelerated`):
`pack` writes a recipe's training faces small enough to travel there, `import` turns the
fp16 pieces that come back into a checkpoint to fine-tune with `train_detector --init`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.shared_data import face_cache_root, shared_data_dir


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        pack = actions.add_parser("pack", help="pack a recipe's training faces")
        pack.add_argument("--out", type=Path, required=True, help="e.g. var/gpu-pack")
        pack.add_argument("--recipe", choices=("mix", "sbi", "dfdc"), default="mix")
        pack.add_argument("--side", type=int, default=128, help="pixels kept of each crop")
        # 51 MiB for the mix recipe: with the rest of the tree, under a call's 64 MiB.
        pack.add_argument("--quality", type=int, default=82, help="WebP quality")
        joined = actions.add_parser("import", help="join a device run's pieces")
        joined.add_argument("--pieces", type=Path, required=True, help="the run's $OUT")
        joined.add_argument("--output", type=Path, required=True, help="the checkpoint")

    def handle(self, *args: Any, **options: Any) -> None:
        from workbench.training.data import TrainingError

        try:
            if options["action"] == "pack":
                self._pack(options)
            else:
                self._import(options)
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc

    def _pack(self, options: dict[str, Any]) -> None:
        from workbench.training.packed import write_pack
        from workbench.training.run import load_training_data

        data = shared_data_dir()
        faces = load_training_data(
            data / "dfdc_faces",
            data / "utkface_faces",
            cache_root=face_cache_root(),
            progress=True,  # the first time, every face goes through MTCNN: minutes
        )
        path, size = write_pack(
            faces,
            options["recipe"],
            options["out"],
            side=options["side"],
            quality=options["quality"],
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {path}: {size / 2**20:.1f} MiB"))

    def _import(self, options: dict[str, Any]) -> None:
        from detection.ml.classifier import save_checkpoint
        from workbench.training.accelerated import join_pieces

        weights, manifest = join_pieces(options["pieces"])
        if not manifest["final"]:
            self.stdout.write(
                self.style.WARNING("these are the run's last snapshot: it did not finish")
            )
        save_checkpoint(
            options["output"],
            weights,
            None,
            input_size=manifest["input_size"],
            epoch=round(manifest["epochs"]),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"wrote {options['output']}: {manifest['recipe']}, {manifest['images_seen']} "
                f"images ({manifest['epochs']:.1f} epochs) on {manifest['device']}"
            )
        )
