"""Whether a trained model beats the shipped one on every dev check, read from their cards."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.shared_data import face_cache_root, shared_data_dir

if TYPE_CHECKING:
    from detection.ml.card import ModelCard
    from workbench.training.comparison import CheckResult, DevCheck, Difference, Reading
    from workbench.training.paired import ScoredModel


class Command(BaseCommand):
    help = (
        "Put a trained model's dev checks beside the shipped model's (both read from their "
        "model cards; nothing is scored again) and say whether it beats the shipped model on "
        "every one, which it must to replace it, and which goals it meets. With --paired, "
        "both are scored again on the same held-out faces and each difference gets its 95 % "
        "interval: a loss inside it does not count."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("candidate", type=Path, help="a checkpoint finished by train_detector")
        parser.add_argument(
            "--against",
            type=Path,
            help="the model to beat (default: DEEPFAKE_CHECKPOINT, the one the service runs)",
        )
        parser.add_argument(
            "--paired",
            action="store_true",
            help="score both models on the held-out sets in $DATA_DIR (a few minutes) and "
            "say how sure each difference is",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from workbench.training.comparison import Outcome, compare

        candidate_path: Path = options["candidate"]
        shipped_path = options["against"] or Path(settings.DEEPFAKE_CHECKPOINT)
        candidate, shipped = _trained_card(candidate_path), _trained_card(shipped_path)
        differences = None
        if options["paired"]:
            from workbench.training.paired import paired_differences

            differences = paired_differences(_scored(shipped_path), _scored(candidate_path))
        comparison = compare(shipped, candidate, differences)
        self.stdout.write(
            f"{candidate.name} ({candidate_path}) against {shipped.name} ({shipped_path})\n"
        )
        paired_header = ("difference [95 %]",) if comparison.paired else ()
        rows = [("check", shipped.name, candidate.name, *paired_header, "", "goal")]
        rows += [
            (
                result.check.label,
                _reading_text(result.shipped, result.check.share),
                _reading_text(result.candidate, result.check.share),
                *(
                    (_difference_text(result.difference, result.check),)
                    if comparison.paired
                    else ()
                ),
                str(result.outcome),
                _goal_text(result.check, result.goal_met),
            )
            for result in comparison.results
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
        losses = comparison.losses()
        if comparison.beats_shipped and comparison.paired:
            better = [result for result in comparison.results if result.better_beyond_noise]
            verdict = (
                f"{candidate.name} may replace {shipped.name}: better beyond the noise of the "
                f"held-out sets on {_labels(better)}, and worse beyond it on none."
            )
            within_noise = [
                result
                for result in comparison.results
                if result.outcome is Outcome.WORSE_WITHIN_NOISE
            ]
            if within_noise:
                verdict += f" Worse within the noise on {_labels(within_noise)}."
        elif comparison.beats_shipped:
            verdict = f"{candidate.name} beats {shipped.name} on every dev check: it may ship."
        elif not losses:
            verdict = f"{candidate.name} is no better than {shipped.name} on any dev check."
        else:
            names = ", ".join(f"{result.check.label} ({result.outcome})" for result in losses)
            verdict = f"{candidate.name} does not beat {shipped.name} on every dev check: {names}."
        self.stdout.write("\n" + verdict)


def _trained_card(checkpoint: Path) -> ModelCard:
    from detection.ml.card import CardError, read_card

    if not checkpoint.is_file():
        raise CommandError(f"{checkpoint} does not exist")
    try:
        card = read_card(checkpoint)
    except CardError as exc:
        raise CommandError(str(exc)) from exc
    if card is None or not card.trained:
        raise CommandError(
            f"{checkpoint} has no trained model card: finish its run first "
            "(`train_detector --workdir ... --finish`)"
        )
    return card


def _labels(results: Iterable[CheckResult]) -> str:
    return ", ".join(result.check.label for result in results)


def _scored(checkpoint: Path) -> ScoredModel:
    """A model's scores on the held-out sets, with its card's settings."""
    from workbench.training.data import TrainingError
    from workbench.training.paired import ScoredModel
    from workbench.training.report import MeasureConfig, held_out_scores

    config = MeasureConfig.in_folder(checkpoint, shared_data_dir(), cache_root=face_cache_root())
    try:
        card, sets = held_out_scores(config)
    except TrainingError as exc:
        raise CommandError(str(exc)) from exc
    assert card.thresholds is not None  # held_out_scores takes trained models only
    return ScoredModel(sets, card.thresholds)


def _difference_text(difference: Difference | None, check: DevCheck) -> str:
    if difference is None:
        return "not measured"
    if check.share or check.out_of:  # shares, in percentage points
        return (
            f"{difference.value * 100:+.2f} pp "
            f"[{difference.low * 100:+.2f}, {difference.high * 100:+.2f}]"
        )
    return f"{difference.value:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]"


def _reading_text(reading: Reading | None, share: bool) -> str:
    if reading is None:
        return "not measured"
    if share:
        return f"{reading.value:.2%}"
    if reading.out_of is not None:
        return f"{reading.value} of {reading.out_of}"
    if isinstance(reading.value, int):
        return str(reading.value)
    text = f"{reading.value:.3f}"
    if reading.low is not None and reading.high is not None:
        text += f" [{reading.low:.3f}-{reading.high:.3f}]"
    return text


def _goal_text(check: DevCheck, met: bool | None) -> str:
    if check.goal is None:
        return ""
    bar = f"{'≥' if check.higher_is_better else '≤'} " + (
        f"{check.goal:.0%}" if check.share else f"{check.goal:g}"
    )
    return bar if met is None else f"{bar}: {'met' if met else 'missed'}"
