"""Metrics for a real/fake scorer, per source, and the ROC and reliability plots.

Labels are 1 for fake and 0 for real; scores are P(fake). Every function takes plain
sequences or numpy arrays so the training loop and the evaluation command share them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ECE_BINS = 15
# The operating points the model card reports: the share of real faces wrongly flagged.
REPORTED_FPRS = (0.01, 0.05)

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Metrics:
    count: int
    fakes: int
    reals: int
    threshold: float  # accuracy is measured at P(fake) >= threshold
    auc: float | None  # None when only one class is present
    # Its 95 % confidence interval: on a few dozen images it can span chance (0.5).
    auc_low: float | None
    auc_high: float | None
    accuracy: float
    tpr_at_1_fpr: float | None
    tpr_at_5_fpr: float | None
    ece: float
    brier: float

    def as_dict(self) -> dict[str, Any]:
        return {
            key: (round(value, 6) if isinstance(value, float) else value)
            for key, value in asdict(self).items()
        }


def _arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    label_array = np.asarray(labels, dtype=np.float64).reshape(-1)
    if score_array.shape != label_array.shape:
        raise ValueError(f"{len(score_array)} scores but {len(label_array)} labels")
    if not np.isin(label_array, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return score_array, label_array


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float | None:
    """Area under the ROC curve as the Mann-Whitney rank statistic (ties count one half).

    It is the probability that a random fake scores above a random real face.
    """
    score_array, label_array = _arrays(scores, labels)
    fakes = int(label_array.sum())
    reals = len(label_array) - fakes
    if fakes == 0 or reals == 0:
        return None
    ranks = _average_ranks(score_array)
    rank_sum = float(ranks[label_array == 1].sum())
    return (rank_sum - fakes * (fakes + 1) / 2) / (fakes * reals)


def auc_interval(
    scores: ArrayLike, labels: ArrayLike, *, confidence: float = 0.95
) -> tuple[float, float] | None:
    """A normal-approximation confidence interval for the AUC, clipped to [0, 1].

    The variance is DeLong's (DeLong, DeLong & Clarke-Pearson, Biometrics 1988), computed
    from midranks (Sun & Xu, IEEE Signal Processing Letters 2014); None with fewer than two
    faces of either class.
    """
    score_array, label_array = _arrays(scores, labels)
    fake_scores, real_scores = score_array[label_array == 1], score_array[label_array == 0]
    fakes, reals = len(fake_scores), len(real_scores)
    if fakes < 2 or reals < 2:
        return None
    combined = _average_ranks(np.r_[fake_scores, real_scores])
    # Per fake: the share of real faces it outranks; per real face: the share of fakes
    # that outrank it. The AUC is the mean of either; their spread gives its variance.
    fake_components = (combined[:fakes] - _average_ranks(fake_scores)) / reals
    real_components = 1.0 - (combined[fakes:] - _average_ranks(real_scores)) / fakes
    variance = np.var(fake_components, ddof=1) / fakes + np.var(real_components, ddof=1) / reals
    auc = float(fake_components.mean())
    half_width = statistics.NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(variance)
    return max(0.0, auc - half_width), min(1.0, auc + half_width)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def rank_correlation(first: ArrayLike, second: ArrayLike) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None when either side is
    constant."""
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} values against {len(b)}")
    ranks_a, ranks_b = _average_ranks(a), _average_ranks(b)
    if ranks_a.std() == 0 or ranks_b.std() == 0:
        return None
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def accuracy_at(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    score_array, label_array = _arrays(scores, labels)
    if not len(score_array):
        return math.nan
    return float(np.mean((score_array >= threshold) == (label_array == 1)))


def threshold_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """The lowest cut with `P(fake) >= cut` flagging at most `fpr` of the real faces."""
    score_array, label_array = _arrays(scores, labels)
    real_scores = np.sort(score_array[label_array == 0])[::-1]
    if not len(real_scores):
        raise ValueError("a false-positive rate needs real faces")
    allowed = math.floor(fpr * len(real_scores) + 1e-9)
    if allowed >= len(real_scores):
        return float(real_scores[-1])
    # Just above the first real score that must stay unflagged: ties with it stay unflagged.
    return float(np.nextafter(real_scores[allowed], np.inf))


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float | None:
    """Share of fakes flagged at the cut that flags at most `fpr` of the real faces."""
    score_array, label_array = _arrays(scores, labels)
    fake_scores = score_array[label_array == 1]
    if not len(fake_scores) or not (label_array == 0).any():
        return None
    return float(np.mean(fake_scores >= threshold_at_fpr(score_array, label_array, fpr)))


def reliability_bins(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of P(fake): mean P(fake), share of fakes, and face count."""
    score_array, label_array = _arrays(probabilities, labels)
    # The last bin is closed so that P(fake) = 1 lands in it.
    index = np.minimum((score_array * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=score_array, minlength=bins) / counts
        frequency = np.bincount(index, weights=label_array, minlength=bins) / counts
    return confidence, frequency, counts


def expected_calibration_error(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS
) -> float:
    """Face-weighted mean gap between predicted P(fake) and the observed share of fakes.

    Measured on P(fake) itself (not on the winning class's confidence), so it reads
    directly off the reliability diagram the card shows.
    """
    confidence, frequency, counts = reliability_bins(probabilities, labels, bins)
    total = counts.sum()
    if not total:
        return math.nan
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(confidence[filled] - frequency[filled])) / total)


def brier_score(probabilities: ArrayLike, labels: ArrayLike) -> float:
    score_array, label_array = _arrays(probabilities, labels)
    if not len(score_array):
        return math.nan
    return float(np.mean((score_array - label_array) ** 2))


def metrics(probabilities: ArrayLike, labels: ArrayLike, *, threshold: float) -> Metrics:
    score_array, label_array = _arrays(probabilities, labels)
    fakes = int(label_array.sum())
    first_fpr, second_fpr = REPORTED_FPRS
    interval = auc_interval(score_array, label_array)
    return Metrics(
        count=len(label_array),
        fakes=fakes,
        reals=len(label_array) - fakes,
        threshold=float(threshold),
        auc=roc_auc(score_array, label_array),
        auc_low=interval[0] if interval else None,
        auc_high=interval[1] if interval else None,
        accuracy=accuracy_at(score_array, label_array, threshold),
        tpr_at_1_fpr=tpr_at_fpr(score_array, label_array, first_fpr),
        tpr_at_5_fpr=tpr_at_fpr(score_array, label_array, second_fpr),
        ece=expected_calibration_error(score_array, label_array),
        brier=brier_score(score_array, label_array),
    )


def metrics_by_source(
    probabilities: ArrayLike, labels: ArrayLike, sources: Sequence[str], *, threshold: float
) -> dict[str, Metrics]:
    score_array, label_array = _arrays(probabilities, labels)
    source_array = np.asarray(sources, dtype=object)
    if len(source_array) != len(score_array):
        raise ValueError(f"{len(score_array)} scores but {len(source_array)} sources")
    return {
        str(source): metrics(
            score_array[source_array == source],
            label_array[source_array == source],
            threshold=threshold,
        )
        for source in sorted(set(source_array.tolist()))
    }


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct cut, from (0, 0) to (1, 1)."""
    score_array, label_array = _arrays(scores, labels)
    order = np.argsort(-score_array, kind="mergesort")
    ordered_scores, ordered_labels = score_array[order], label_array[order]
    # One point per distinct score: the last position of each run of tied scores.
    last_of_run = np.r_[np.flatnonzero(np.diff(ordered_scores)), len(ordered_scores) - 1]
    true_positives = np.cumsum(ordered_labels)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives
    fakes = max(label_array.sum(), 1.0)
    reals = max(len(label_array) - label_array.sum(), 1.0)
    return (
        np.r_[0.0, false_positives / reals],
        np.r_[0.0, true_positives / fakes],
    )


def plot_roc(curves: Mapping[str, tuple[ArrayLike, ArrayLike]], path: Path, *, title: str) -> None:
    """One ROC curve per entry (name → (scores, labels)); dashed lines mark 1 % and 5 % FPR."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(5.2, 5.0), dpi=110)
    for name, (scores, labels) in curves.items():
        auc = roc_auc(scores, labels)
        if auc is None:
            continue
        false_rate, true_rate = roc_curve(scores, labels)
        axes.plot(false_rate, true_rate, linewidth=1.6, label=f"{name} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    for fpr in REPORTED_FPRS:
        axes.axvline(fpr, color="#999999", linewidth=0.6, linestyle="--")
    axes.set(
        xlabel="false-positive rate (real faces flagged)",
        ylabel="true-positive rate (fakes caught)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=title,
    )
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    _save(figure, path)


def plot_reliability(
    probabilities: ArrayLike, labels: ArrayLike, path: Path, *, title: str, bins: int = ECE_BINS
) -> None:
    """Observed share of fakes against predicted P(fake) per bin, with the bins' face counts."""
    pyplot = _pyplot()
    confidence, frequency, counts = reliability_bins(probabilities, labels, bins)
    ece = expected_calibration_error(probabilities, labels, bins)
    figure, (top, bottom) = pyplot.subplots(
        2, 1, figsize=(5.2, 5.6), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centres = (np.arange(bins) + 0.5) / bins
    filled = counts > 0
    top.bar(
        centres[filled],
        frequency[filled],
        width=1 / bins,
        edgecolor="#1f2937",
        color="#818cf8",
        alpha=0.8,
        label="observed share of fakes",
    )
    top.plot(confidence[filled], frequency[filled], "o", color="#1f2937", markersize=3)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    top.set(ylabel="share of fakes", ylim=(0, 1), title=f"{title} (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(centres, counts, width=1 / bins, color="#9ca3af", edgecolor="#4b5563")
    bottom.set(xlabel="predicted P(fake)", ylabel="faces", xlim=(0, 1), yscale="symlog")
    _save(figure, path)


def _pyplot() -> Any:
    # Agg renders without a display; workers and CI have none.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    _pyplot().close(figure)


def plot_training(
    loss_curve: Sequence[tuple[int, float]],
    checks: Mapping[str, Sequence[tuple[int, float | None]]],
    path: Path,
    *,
    title: str,
) -> None:
    """Training loss and held-out scores against the number of images seen."""
    pyplot = _pyplot()
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(5.6, 6.0), dpi=110, sharex=True)
    if loss_curve:
        seen, loss = zip(*loss_curve, strict=True)
        top.plot(np.asarray(seen) / 1e6, loss, linewidth=0.8, color="#6b7280")
    top.set(ylabel="training loss", title=title)
    top.grid(alpha=0.3)
    for name, points in checks.items():
        measured = [(x, y) for x, y in points if y is not None]
        if measured:
            seen, values = zip(*measured, strict=True)
            bottom.plot(np.asarray(seen) / 1e6, values, "o-", markersize=3, label=name)
    bottom.axhline(0.5, linestyle=":", color="grey", linewidth=1)
    bottom.set(xlabel="images seen (millions)", ylabel="AUC of the EMA weights", ylim=(0.4, 1.0))
    bottom.legend(loc="lower right", fontsize=8)
    bottom.grid(alpha=0.3)
    _save(figure, path)
