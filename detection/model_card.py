"""The model card page: what the running classifier catches and misses, how it was measured,
and what it cannot do.

It reads the card beside the configured checkpoint (`selectors.running_model`) through
`detection.ml.card`, which imports no torch: the web process never loads the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from detection import selectors
from detection.ml.card import PLOT_KINDS, plot_path

_METRIC_LABELS = {
    "auc": "ROC AUC (0.5 is chance, 1 is perfect)",
    "auc_low": "ROC AUC, 95 % interval from",
    "auc_high": "ROC AUC, 95 % interval to",
    "accuracy": "Accuracy at the flag threshold",
    "tpr_at_1_fpr": "Fakes caught when 1 % of real faces are flagged",
    "tpr_at_5_fpr": "Fakes caught when 5 % of real faces are flagged",
    "flagged_fake": "Share judged likely manipulated",
    "flagged_uncertain": "Share judged uncertain or worse",
    "ece": "Expected calibration error (15 bins)",
    "brier": "Brier score (lower is better)",
    "count": "Faces measured",
    "fakes": "of which fake",
    "reals": "of which real",
    "threshold": "Threshold used for accuracy",
    "blur_rank_correlation_reals": "Real faces: rank correlation of the score with blur",
}
_TRAINING_LABELS = {
    "recipe": "Recipe",
    "epochs_run": "Epochs run",
    "images_seen": "Training images seen",
    "training_hours": "Training hours (CPU)",
    "input_size": "Training input size",
    "batch_size": "Batch size",
    "optimizer": "Optimiser",
    "schedule": "Learning-rate schedule",
    "precision": "Precision",
    "images_per_second": "Training images per second",
    "command": "Command",
    "refitted": "Serving settings fitted again",
}
_DATA_LABELS = {
    "crops": "Face crops used",
    "real": "Real",
    "fake": "Fake",
    "train": "Training crops",
    "validation": "Validation crops",
    "split": "Split",
    "preparation": "Preparation",
    "augmentation": "Augmentation",
}


@login_required
@require_GET
def model_card(request: HttpRequest) -> HttpResponseBase:
    """The page; with `?plot=<kind>`, that plot of the running model."""
    checkpoint = Path(settings.DEEPFAKE_CHECKPOINT)
    kind = request.GET.get("plot")
    if kind is not None:
        if kind not in PLOT_KINDS:
            raise Http404("No such plot")
        return _png_response(plot_path(checkpoint, kind))
    context = _card_context()
    context["plots"] = [
        {"url": f"{reverse('detection:model-card')}?plot={kind}", "kind": kind}
        for kind in PLOT_KINDS
        if plot_path(checkpoint, kind).is_file()
    ]
    return render(request, "detection/model_card.html", context)


def _png_response(path: Path) -> FileResponse:
    if not path.is_file():
        raise Http404("No such plot")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = "inline"
    return response


def _card_context() -> dict[str, Any]:
    model = selectors.running_model()
    card = model.card
    return {
        "installed": model.installed,
        "checkpoint_name": model.checkpoint_name,
        "card_problem": model.card_problem,
        "card": card,
        "version": model.version,
        "data_facts": _labelled(
            {
                key: value
                for key, value in card.training_data.items()
                if key not in ("dataset", "licence")
            },
            _DATA_LABELS,
        ),
        "evaluations": [
            {
                "title": evaluation.title,
                "note": evaluation.note,
                "in_domain": evaluation.in_domain,
                "rows": _labelled(evaluation.metrics, _METRIC_LABELS),
                "groups": [
                    {
                        "attribute": group.attribute.capitalize(),
                        "group": group.group,
                        "count": group.count,
                        "fake": _count_and_share(group.judged_fake, group.fake_share),
                        "uncertain": _count_and_share(
                            group.judged_uncertain, group.uncertain_share
                        ),
                        "mean_probability": _shown(group.mean_probability),
                    }
                    for group in evaluation.by_group
                ],
            }
            for evaluation in card.evaluations.values()
        ],
        "flag_threshold": model.flag_threshold,
        "uncertain_threshold": model.uncertain_threshold,
        "training_facts": _labelled(card.training, _TRAINING_LABELS),
    }


def _labelled(values: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(label, shown value) for the known keys in their order, then the remaining scalars."""
    known = [key for key in labels if key in values]
    others = sorted(key for key in values if key not in labels)
    return [
        (labels.get(key, key.replace("_", " ").capitalize()), _shown(values[key]))
        for key in known + others
        if isinstance(values[key], str | int | float | bool) or values[key] is None
    ]


def _count_and_share(count: int, share: float) -> str:
    return f"{count} ({100 * share:.1f} %)"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        # Rates and scores need four decimals; seconds and throughputs do not.
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)
