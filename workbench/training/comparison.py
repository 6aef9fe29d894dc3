"""Whether a trained model may replace the shipped one: every dev check of their two cards,
side by side.

The rule the team ships by: a new model replaces the shipped one only if it beats it on every
dev check its card records (DFDC validation, the held-out UTKFace photos, the sample frames
and the GAN faces, out of scope but never tuned on). A tie does not count against it (two
models that flag no real frame are equally right there) as long as it is better somewhere; a
check one card lacks does, since nobody knows how the model does there. The goals beside
the checks are the model's own targets, met or missed whatever the shipped model does.

Given paired differences (`paired`: both models scored on the same faces), a worse number
whose interval holds 0 is one the held-out sets cannot tell from chance: it is shown as
"worse, within noise" and does not count against the candidate, and the candidate must then
be better beyond noise somewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from detection.ml.card import ModelCard
from workbench.training.report import DFDC_VALIDATION, GAN_FACES, SAMPLE_FRAMES, UTKFACE_PHOTOS


@dataclass(frozen=True)
class DevCheck:
    label: str
    evaluation: str  # the card's evaluation key
    metric: str
    higher_is_better: bool
    share: bool = False  # printed as a percentage
    goal: float | None = None  # what the model must reach, in the metric's direction
    # The metric counting what `metric` counts a part of (e.g. the fakes among the frames):
    # counts are compared as shares, since two models may find faces in different frames.
    out_of: str | None = None


DEV_CHECKS = (
    DevCheck("DFDC validation AUC", DFDC_VALIDATION, "auc", True, goal=0.85),
    DevCheck("DFDC fakes caught at 1 % FPR", DFDC_VALIDATION, "tpr_at_1_fpr", True, share=True),
    DevCheck("DFDC fakes caught at 5 % FPR", DFDC_VALIDATION, "tpr_at_5_fpr", True, share=True),
    DevCheck("DFDC validation ECE", DFDC_VALIDATION, "ece", False, goal=0.05),
    DevCheck(
        "real photos judged fake", UTKFACE_PHOTOS, "flagged_fake", False, share=True, goal=0.02
    ),
    DevCheck(
        "real photos uncertain or fake",
        UTKFACE_PHOTOS,
        "flagged_uncertain",
        False,
        share=True,
        goal=0.05,
    ),
    DevCheck("sample frames AUC", SAMPLE_FRAMES, "auc", True, goal=0.75),
    DevCheck("sample frames: fakes flagged", SAMPLE_FRAMES, "fakes_flagged", True, out_of="fakes"),
    DevCheck("sample frames: reals flagged", SAMPLE_FRAMES, "reals_flagged", False, out_of="reals"),
    DevCheck("GAN faces AUC (out of scope)", GAN_FACES, "auc", True),
)


class Outcome(StrEnum):
    BETTER = "better"
    SAME = "same"
    WORSE = "worse"
    WORSE_WITHIN_NOISE = "worse, within noise"
    UNMEASURED = "not measured"


@dataclass(frozen=True)
class Difference:
    """The candidate's number minus the shipped model's on one check, both scored on the same
    faces, with its 95 % interval over resamples of those faces."""

    value: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 0 <= self.high


@dataclass(frozen=True)
class Reading:
    """One card's number for a check, with its 95 % interval or what it counts a part of
    where the card has them."""

    value: float
    low: float | None = None
    high: float | None = None
    out_of: int | None = None

    @property
    def comparable(self) -> float:
        return self.value / self.out_of if self.out_of else self.value


@dataclass(frozen=True)
class CheckResult:
    check: DevCheck
    shipped: Reading | None
    candidate: Reading | None
    outcome: Outcome
    goal_met: bool | None  # None: the check has no goal, or the candidate was not measured
    difference: Difference | None = None  # with paired scores only

    @property
    def better_beyond_noise(self) -> bool:
        return (
            self.outcome is Outcome.BETTER
            and self.difference is not None
            and not self.difference.within_noise
        )


@dataclass(frozen=True)
class Comparison:
    results: tuple[CheckResult, ...]
    paired: bool = False  # whether the differences were measured on the same faces

    @property
    def beats_shipped(self) -> bool:
        """Better on at least one check (beyond noise, where that was measured) and worse on
        none (a model the same everywhere is no reason to replace the one that ships)."""
        if self.losses():
            return False
        if self.paired:
            return any(result.better_beyond_noise for result in self.results)
        return any(result.outcome is Outcome.BETTER for result in self.results)

    def losses(self) -> list[CheckResult]:
        return [
            result
            for result in self.results
            if result.outcome in (Outcome.WORSE, Outcome.UNMEASURED)
        ]


def compare(
    shipped: ModelCard,
    candidate: ModelCard,
    differences: Mapping[str, Difference] | None = None,
) -> Comparison:
    """The two cards check by check; `differences` (by check label, from `paired`) let a loss
    inside the noise stand."""
    return Comparison(
        tuple(
            _result(check, shipped, candidate, (differences or {}).get(check.label))
            for check in DEV_CHECKS
        ),
        paired=differences is not None,
    )


def _result(
    check: DevCheck, shipped: ModelCard, candidate: ModelCard, difference: Difference | None
) -> CheckResult:
    ours, theirs = _reading(candidate, check), _reading(shipped, check)
    if ours is None or theirs is None:
        outcome = Outcome.UNMEASURED
    elif ours.comparable == theirs.comparable:
        outcome = Outcome.SAME
    elif _at_least(ours.comparable, theirs.comparable, check):
        outcome = Outcome.BETTER
    elif difference is not None and difference.within_noise:
        outcome = Outcome.WORSE_WITHIN_NOISE
    else:
        outcome = Outcome.WORSE
    goal_met = (
        None if check.goal is None or ours is None else _at_least(ours.value, check.goal, check)
    )
    return CheckResult(check, theirs, ours, outcome, goal_met, difference)


def _at_least(value: float, bar: float, check: DevCheck) -> bool:
    """Whether `value` is as good as `bar` or better, in the check's direction."""
    return value >= bar if check.higher_is_better else value <= bar


def _reading(card: ModelCard, check: DevCheck) -> Reading | None:
    evaluation = card.evaluations.get(check.evaluation)
    if evaluation is None or evaluation.metrics.get(check.metric) is None:
        return None
    metrics = evaluation.metrics
    if check.metric == "auc":
        return Reading(metrics["auc"], metrics.get("auc_low"), metrics.get("auc_high"))
    return Reading(metrics[check.metric], out_of=metrics.get(check.out_of or ""))
