"""How sure a difference between two models is, dev check by dev check.

Two cards side by side cannot say whether a gap is the models' or the held-out sets': an ECE
of 0.015 against 0.018 on 4,000 faces may be either. Here both models score the same faces,
and the set is drawn again with replacement, the same draw for both models: the middle 95 % of
the candidate's number minus the shipped model's over the draws is the difference's interval.
Where it holds 0, the sets cannot tell the two models apart on that check.

A draw keeps the set's mix (fakes and reals are drawn apart) and draws whole groups: the fakes
made from one DFDC video look alike, and counting them as independent faces would make every
interval too narrow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from detection.ml.card import Thresholds
from workbench import evaluation
from workbench.training.comparison import DEV_CHECKS, DevCheck, Difference
from workbench.training.report import ScoredSet

FIRST_FPR, SECOND_FPR = evaluation.REPORTED_FPRS  # the operating points the cards report
RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ScoredModel:
    """A model's scores on the held-out sets (by the card's evaluation key) and its
    thresholds, which the checks that count verdicts need."""

    sets: Mapping[str, ScoredSet]
    thresholds: Thresholds


Statistic = Callable[[np.ndarray, np.ndarray, Thresholds], float | None]


def _reals_at(attribute: str) -> Statistic:
    """The share of real items at or above one of the model's thresholds."""
    return lambda p, labels, thresholds: float(
        np.mean(p[labels == 0] >= getattr(thresholds, attribute))
    )


def _fakes_flagged(p: np.ndarray, labels: np.ndarray, thresholds: Thresholds) -> float:
    return float(np.mean(p[labels == 1] >= thresholds.flag))


# Each check's number from scores, labels and thresholds; the frame counts as shares of the
# frames scored, as `comparison` compares them.
STATISTICS: dict[str, Statistic] = {
    "auc": lambda p, labels, _: evaluation.roc_auc(p, labels),
    "tpr_at_1_fpr": lambda p, labels, _: evaluation.tpr_at_fpr(p, labels, FIRST_FPR),
    "tpr_at_5_fpr": lambda p, labels, _: evaluation.tpr_at_fpr(p, labels, SECOND_FPR),
    "ece": lambda p, labels, _: evaluation.expected_calibration_error(p, labels),
    "flagged_fake": _reals_at("flag"),
    "flagged_uncertain": _reals_at("uncertain"),
    "reals_flagged": _reals_at("flag"),
    "fakes_flagged": _fakes_flagged,
}


def paired_differences(
    shipped: ScoredModel,
    candidate: ScoredModel,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Difference]:
    """Candidate minus shipped, with its interval, for every dev check (by label) both models
    were scored for. Items are paired by name: a frame where only one model found a face is
    left out of both."""
    differences = {}
    for check in DEV_CHECKS:
        ours, theirs = candidate.sets.get(check.evaluation), shipped.sets.get(check.evaluation)
        if ours is None or theirs is None:
            continue
        difference = _difference(
            check,
            _paired(theirs, ours),
            (shipped.thresholds, candidate.thresholds),
            resamples=resamples,
            seed=seed,
        )
        if difference is not None:
            differences[check.label] = difference
    return differences


@dataclass(frozen=True)
class _Pair:
    labels: np.ndarray
    groups: np.ndarray
    shipped: np.ndarray
    candidate: np.ndarray


def _paired(shipped: ScoredSet, candidate: ScoredSet) -> _Pair:
    candidate_index = {name: index for index, name in enumerate(candidate.names)}
    both = [
        (index, candidate_index[name])
        for index, name in enumerate(shipped.names)
        if name in candidate_index
    ]
    shipped_rows = np.array([pair[0] for pair in both], dtype=np.int64)
    candidate_rows = np.array([pair[1] for pair in both], dtype=np.int64)
    if not np.array_equal(shipped.labels[shipped_rows], candidate.labels[candidate_rows]):
        raise ValueError("the two models were scored on differently labelled sets")
    return _Pair(
        labels=shipped.labels[shipped_rows],
        groups=np.asarray(shipped.groups, dtype=object)[shipped_rows],
        shipped=shipped.probabilities[shipped_rows],
        candidate=candidate.probabilities[candidate_rows],
    )


def _difference(
    check: DevCheck,
    pair: _Pair,
    thresholds: tuple[Thresholds, Thresholds],
    *,
    resamples: int,
    seed: int,
) -> Difference | None:
    statistic = STATISTICS[check.metric]
    shipped_thresholds, candidate_thresholds = thresholds

    def gap(rows: np.ndarray) -> float | None:
        labels = pair.labels[rows]
        ours = statistic(pair.candidate[rows], labels, candidate_thresholds)
        theirs = statistic(pair.shipped[rows], labels, shipped_thresholds)
        return None if ours is None or theirs is None else ours - theirs

    observed = gap(np.arange(len(pair.labels)))
    if observed is None:
        return None
    generator = np.random.default_rng(seed)
    strata = [_Clusters.of(pair, label) for label in (0, 1) if (pair.labels == label).any()]
    draws = [
        gap(np.concatenate([clusters.draw(generator) for clusters in strata]))
        for _ in range(resamples)
    ]
    spread = np.array([draw for draw in draws if draw is not None], dtype=np.float64)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(spread, [tail, 100 - tail])
    return Difference(value=observed, low=float(low), high=float(high))


@dataclass(frozen=True)
class _Clusters:
    """The rows of one class, grouped: `rows` ordered by group, each group a run of it."""

    rows: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, pair: _Pair, label: int) -> _Clusters:
        rows = np.flatnonzero(pair.labels == label)
        _, group_ids = np.unique(pair.groups[rows], return_inverse=True)
        order = np.argsort(group_ids, kind="stable")
        sizes = np.bincount(group_ids)
        return cls(rows=rows[order], starts=np.cumsum(sizes) - sizes, sizes=sizes)

    def draw(self, generator: np.random.Generator) -> np.ndarray:
        """As many groups as there are, drawn with replacement: the rows of all of them."""
        picked = generator.integers(len(self.sizes), size=len(self.sizes))
        sizes = self.sizes[picked]
        # Each picked group's run: its start, then one step per row within it.
        first_of_run = np.repeat(self.starts[picked] - (np.cumsum(sizes) - sizes), sizes)
        return self.rows[first_of_run + np.arange(sizes.sum())]
