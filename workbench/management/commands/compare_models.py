"""Whether a trained model beats the shipped one on every dev check, read from their cards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

if TYPE_CHECKING:
    from detection.ml.card import ModelCard
    from workbench.training.comparison import DevCheck, Reading


class Command(BaseCommand):
    help = (
        "Put a trained model's dev checks beside the shipped model's (both read from their "
        "model cards; nothing is scored again) and say whether it beats the shipped model on "
        "every one, which it must to replace it, and which goals it meets."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("candidate", type=Path, help="a checkpoint finished by train_detector")
        parser.add_argument(
            "--against",
            type=Path,
            help="the model to beat (default: DEEPFAKE_CHECKPOINT, the one the service runs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from workbench.training.comparison import compare

        candidate_path: Path = options["candidate"]
        shipped_path = options["against"] or Path(settings.DEEPFAKE_CHECKPOINT)
        candidate, shipped = _trained_card(candidate_path), _trained_card(shipped_path)
        comparison = compare(shipped, candidate)
        self.stdout.write(
            f"{candidate.name} ({candidate_path}) against {shipped.name} ({shipped_path})\n"
        )
        rows = [("check", shipped.name, candidate.name, "", "goal")]
        rows += [
            (
                result.check.label,
                _reading_text(result.shipped, result.check.share),
                _reading_text(result.candidate, result.check.share),
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
        if comparison.beats_shipped:
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
