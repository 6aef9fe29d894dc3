"""Train the real/fake classifier (a long, resumable run), then calibrate it into a model."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.shared_data import face_cache_root, shared_data_dir

if TYPE_CHECKING:
    from workbench.training.calibration import Budgets

# The options that set up a run (the option's name: RunConfig's field). Left out, they take
# RunConfig's defaults, or with --resume the saved run's settings.
RUN_SETTINGS = {
    "recipe": "recipe",
    "input_size": "input_size",
    "crop_top_cut": "crop_top_cut",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "ema_decay": "ema_decay",
    "seed": "seed",
    "init": "init",
    "train_from": "train_from",
}


class Command(BaseCommand):
    help = (
        "Train the classifier (InceptionResnetV1, or FaceResNet when --init holds dlib's face "
        "weights from import_face_resnet) on real faces, their self-blended fakes and DFDC "
        "fakes (--recipe), saving the whole state every few minutes under --workdir; --resume "
        "continues a stopped run with its saved settings. --finish turns a run's EMA weights "
        "into a calibrated fp16 checkpoint with its model card and plots. --remeasure "
        "measures a model on the held-out sets with its own calibration and thresholds and "
        "rewrites its card's numbers; --refit fits its mirror choice, calibration and "
        "thresholds again first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        from workbench.training.calibration import FAKE_BUDGET, UNCERTAIN_BUDGET
        from workbench.training.run import RECIPES, RunConfig

        defaults = {field.name: field.default for field in dataclasses.fields(RunConfig)}

        def default(option: str) -> str:
            return f"default {defaults[RUN_SETTINGS[option]]}; with --resume, the saved run's"

        parser.add_argument("--workdir", type=Path, help="e.g. var/training/mix-128 (required)")
        parser.add_argument(
            "--dfdc", type=Path, help="DFDC face set (default: $DATA_DIR/dfdc_faces)"
        )
        parser.add_argument(
            "--utkface", type=Path, help="real photos (default: $DATA_DIR/utkface_faces)"
        )
        parser.add_argument(
            "--samples",
            type=Path,
            help="sample frames scored after each epoch, for the curve only (default: "
            "$DATA_DIR/samples)",
        )
        parser.add_argument("--recipe", choices=sorted(RECIPES), help=default("recipe"))
        parser.add_argument("--input-size", type=int, help=default("input_size"))
        parser.add_argument(
            "--crop-top-cut",
            type=float,
            metavar="SHARE",
            help="leave out this share of the face box at the top: the data sets' crops end "
            f"about 0.15 below MTCNN's box ({default('crop_top_cut')})",
        )
        parser.add_argument(
            "--epochs",
            type=int,
            help=f"{default('epochs')}, and a new count re-plans the rest of the learning-rate "
            "schedule",
        )
        parser.add_argument("--batch-size", type=int, help=default("batch_size"))
        parser.add_argument("--lr", type=float, help=f"peak learning rate ({default('lr')})")
        parser.add_argument("--ema-decay", type=float, help=default("ema_decay"))
        parser.add_argument("--seed", type=int, help=default("seed"))
        parser.add_argument(
            "--init",
            type=Path,
            help="warm-start from this checkpoint, whose network the run trains (with --resume, "
            "the saved run's)",
        )
        parser.add_argument(
            "--train-from",
            metavar="BLOCK",
            help="with --init: train from this block on (e.g. repeat_1 of InceptionResnetV1, "
            "units.7 of FaceResNet); the blocks before it keep the warm start's weights, and a "
            "step costs about a third less (with --resume, the saved run's)",
        )
        parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--save-every", type=float, default=10.0, metavar="MINUTES")
        parser.add_argument(
            "--stop-after", type=float, metavar="MINUTES", help="save and stop after this long"
        )
        parser.add_argument("--resume", action="store_true", help="continue the saved run")
        parser.add_argument(
            "--finish",
            action="store_true",
            help="do not train: turn the run's EMA weights into a calibrated model (--output)",
        )
        parser.add_argument(
            "--remeasure",
            type=Path,
            metavar="CHECKPOINT",
            help="do not train: measure this model again (its face cache goes under "
            "var/training/cache) and rewrite its card's measurements, summary and limitations",
        )
        parser.add_argument(
            "--refit",
            type=Path,
            metavar="CHECKPOINT",
            help="do not train: fit this model's mirror choice, calibration and thresholds again "
            "by the rules --finish applies, measure it with them and rewrite its card (its "
            "weights stay)",
        )
        parser.add_argument("--output", type=Path, help="with --finish: the checkpoint to write")
        parser.add_argument("--name", help="with --finish: the model's name (default: its stem)")
        parser.add_argument(
            "--fake-budget",
            type=float,
            metavar="SHARE",
            help="with --finish or --refit: the share of real faces the fake threshold may flag "
            f"(default and most {FAKE_BUDGET}); lower it to flag no more real photos than "
            "another model does",
        )
        parser.add_argument(
            "--uncertain-budget",
            type=float,
            metavar="SHARE",
            help="with --finish or --refit: the same for the uncertain threshold (default and "
            f"most {UNCERTAIN_BUDGET})",
        )
        parser.add_argument(
            "--gan", type=Path, help="GAN check set (default: $DATA_DIR/gan_faces), report only"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **options: Any) -> None:
        from workbench.training.data import TrainingError
        from workbench.training.run import RunConfig, train

        data = shared_data_dir()
        budgeted = any(options[name] is not None for name in ("fake_budget", "uncertain_budget"))
        if budgeted and not (options["finish"] or options["refit"]):
            raise CommandError("--fake-budget and --uncertain-budget go with --finish or --refit")
        if options["remeasure"] or options["refit"]:
            self._measure(options, data)
            return
        if options["workdir"] is None:
            raise CommandError("--workdir is required to train or to finish a run")
        if options["finish"]:
            self._finish(options, data)
            return
        given = {
            field: options[option]
            for option, field in RUN_SETTINGS.items()
            if options[option] is not None
        }
        if options["resume"]:
            given = {**RunConfig.saved_settings(options["workdir"]), **given}
        try:
            config = RunConfig(
                workdir=options["workdir"],
                dfdc_dir=options["dfdc"] or data / "dfdc_faces",
                utkface_dir=options["utkface"] or data / "utkface_faces",
                samples_dir=options["samples"] or data / "samples",
                **given,
                threads=options["threads"],
                device=options["device"],
                save_every_minutes=options["save_every"],
                stop_after_minutes=options["stop_after"],
                command=shlex.join(["python", *sys.argv]),
            )
            train(
                config,
                resume=options["resume"],
                progress=not options["no_progress"],
                log=self.stdout.write,
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc

    def _finish(self, options: dict[str, Any], data: Path) -> None:
        from workbench.training.data import TrainingError
        from workbench.training.report import FinishConfig, finish

        output: Path | None = options["output"]
        if output is None:
            raise CommandError("--finish needs --output, the checkpoint to write")
        config = FinishConfig(
            workdir=options["workdir"],
            output=output,
            dfdc_dir=options["dfdc"] or data / "dfdc_faces",
            utkface_dir=options["utkface"] or data / "utkface_faces",
            gan_dir=options["gan"] or data / "gan_faces",
            samples_dir=options["samples"] or data / "samples",
            name=options["name"] or output.stem,
            command=shlex.join(["python", *sys.argv]),
            budgets=budgets(options),
        )
        try:
            card = finish(config, log=self.stdout.write)
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"wrote {output} and its model card"))
        for sentence in card.summary:
            self.stdout.write(f"- {sentence}")

    def _measure(self, options: dict[str, Any], data: Path) -> None:
        """--remeasure and --refit: a trained model measured again, with its card's settings
        or with settings fitted again."""
        from detection.ml.classifier import CheckpointError
        from workbench.training.data import TrainingError
        from workbench.training.report import MeasureConfig, refit, remeasure

        if options["remeasure"] and options["refit"]:
            raise CommandError(
                "--remeasure keeps a model's settings and --refit fits them: choose one"
            )
        checkpoint: Path = options["refit"] or options["remeasure"]
        config = MeasureConfig.in_folder(
            checkpoint,
            data,
            cache_root=face_cache_root(),
            dfdc_dir=options["dfdc"],
            utkface_dir=options["utkface"],
            gan_dir=options["gan"],
            samples_dir=options["samples"],
        )
        try:
            if options["refit"]:
                card = refit(
                    config,
                    command=shlex.join(["python", *sys.argv]),
                    budgets=budgets(options),
                    log=self.stdout.write,
                )
            else:
                card = remeasure(config, log=self.stdout.write)
        except (CheckpointError, TrainingError) as exc:
            raise CommandError(str(exc)) from exc
        done = "fitted the settings of" if options["refit"] else "rewrote the measurements in"
        self.stdout.write(self.style.SUCCESS(f"{done} {checkpoint}'s card"))
        for sentence in card.summary:
            self.stdout.write(f"- {sentence}")


def budgets(options: dict[str, Any]) -> Budgets:
    """The thresholds' false-alarm budgets the options give, the limits where they give none."""
    from workbench.training.calibration import Budgets

    given = {
        field: options[option]
        for option, field in (("fake_budget", "fake"), ("uncertain_budget", "uncertain"))
        if options[option] is not None
    }
    try:
        return Budgets(**given)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
