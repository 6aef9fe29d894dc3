"""From logits to the numbers the service decides with: a calibration and two thresholds.

The calibration (a temperature and a bias) makes P(fake) mean what it says on the
validation faces. The thresholds are set by how many real faces they would wrongly flag,
and real photos are the kind of image the service sees most: each threshold must respect
its false-positive budget on held-out real photos AND on the validation video frames,
whichever is stricter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from detection.ml.card import Calibration, Thresholds
from workbench.evaluation import threshold_at_fpr

# The most of any set of real faces each verdict may wrongly give (the model issue's limits).
FAKE_BUDGET = 0.02
UNCERTAIN_BUDGET = 0.05


@dataclass(frozen=True)
class Budgets:
    """The shares of real faces the `fake` and the `uncertain` threshold may wrongly give.

    The limits by default. A stricter pair trades fakes caught for fewer false alarms: it is
    how a model is set to flag no more real photos than the one it replaces."""

    fake: float = FAKE_BUDGET
    uncertain: float = UNCERTAIN_BUDGET

    def __post_init__(self) -> None:
        if not 0 < self.fake <= FAKE_BUDGET:
            raise ValueError(
                f"the fake budget must be above 0 and at most {FAKE_BUDGET}, not {self.fake}"
            )
        if not self.fake <= self.uncertain <= UNCERTAIN_BUDGET:
            raise ValueError(
                f"the uncertain budget must lie between the fake budget ({self.fake}) and "
                f"{UNCERTAIN_BUDGET}, not {self.uncertain}"
            )


LIMITS = Budgets()  # the budgets a model is finished to unless told stricter ones


CALIBRATION_METHOD = (
    "Platt scaling (a temperature and a bias) fitted by LBFGS on the DFDC validation faces"
)


# The least slope (1 / temperature) a fit may give. Where a model's logits tell real from fake
# no better than the base rate does (an untrained or collapsed model), the likelihood keeps
# improving as the slope falls towards zero and then past it: its optimum there is a matter of
# rounding, which differs from one CPU to another. Held here, such a model's scores become the
# base rate the same way on every machine; any model worth serving fits a slope far above it.
MIN_SLOPE = 1e-3


def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    """The T and b that minimise the negative log-likelihood of sigmoid(logit / T + b).

    Fitted as a logistic regression of the labels on the logits, in the slope 1 / T and b,
    where the likelihood is convex and its optimum unique (LBFGS from T = 1, b = 0); a slope
    under MIN_SLOPE is held there and b fitted alone."""
    logit_tensor = torch.as_tensor(logits, dtype=torch.float64)
    label_tensor = torch.as_tensor(labels, dtype=torch.float64)
    slope = torch.ones(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    _minimise_nll(logit_tensor, label_tensor, slope, bias, fitted=[slope, bias])
    if float(slope.detach()) < MIN_SLOPE:
        slope = torch.full((1,), MIN_SLOPE, dtype=torch.float64)
        _minimise_nll(logit_tensor, label_tensor, slope, bias, fitted=[bias])
    return Calibration(
        temperature=1.0 / float(slope.detach()),
        method=CALIBRATION_METHOD,
        bias=float(bias.detach()),
    )


def _minimise_nll(
    logits: torch.Tensor,
    labels: torch.Tensor,
    slope: torch.Tensor,
    bias: torch.Tensor,
    *,
    fitted: list[torch.Tensor],
) -> None:
    optimizer = torch.optim.LBFGS(fitted, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def negative_log_likelihood() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits * slope + bias, labels)
        loss.backward()
        return loss

    optimizer.step(negative_log_likelihood)


def calibrated(logits: np.ndarray, calibration: Calibration) -> np.ndarray:
    """P(fake) of raw logits."""
    scaled = calibration.logits(np.asarray(logits, dtype=np.float64))
    return np.asarray(1.0 / (1.0 + np.exp(-scaled)), dtype=np.float64)


def choose_thresholds(real_sets: Mapping[str, np.ndarray], budgets: Budgets = LIMITS) -> Thresholds:
    """`fake` flags at most the fake budget and `uncertain` at most the uncertain budget of
    every set of real faces."""
    if not real_sets:
        raise ValueError("thresholds need at least one set of real faces")

    def strictest(budget: float) -> float:
        return max(
            # A real face scored exactly 1.0 would push the cut past 1; the card allows 1.
            min(1.0, threshold_at_fpr(scores, np.zeros(len(scores)), budget))
            for scores in real_sets.values()
        )

    flag = strictest(budgets.fake)
    uncertain = min(flag, strictest(budgets.uncertain))
    names = " and ".join(real_sets)
    return Thresholds(
        flag=flag,
        uncertain=uncertain,
        selection=(
            f"fake: the lowest calibrated P(fake) that flags at most {_percent(budgets.fake)} "
            f"of the {names}; uncertain: the same at {_percent(budgets.uncertain)}; where the "
            "sets disagree the stricter cut wins"
        ),
    )


def _percent(share: float) -> str:
    return f"{share * 100:g}%"
