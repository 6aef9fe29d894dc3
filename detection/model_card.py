"""The model card page: what the running classifier is, how it was measured, what it cannot do.

It reads the card JSON beside the configured checkpoint and hashes the checkpoint file for
its version, without importing torch: the web process never loads the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

_METRIC_LABELS = {
    "auc": "ROC AUC",
    "accuracy": "Accuracy at the flag threshold",
    "tpr_at_1_fpr": "Fakes caught when 1 % of real faces are flagged",
    "tpr_at_5_fpr": "Fakes caught when 5 % of real faces are flagged",
    "ece": "Expected calibration error (15 bins)",
    "brier": "Brier score (lower is better)",
    "count": "Faces measured",
    "fakes": "of which fake",
    "reals": "of which real",
    "threshold": "Threshold used for accuracy",
    "validation_accuracy": "Validation accuracy",
}
_TRAINING_LABELS = {
    "epochs_run": "Epochs run",
    "best_epoch": "Best epoch (kept)",
    "batch_size": "Batch size",
    "optimizer": "Optimiser",
    "schedule": "Learning-rate schedule",
    "precision": "Precision",
    "early_stopping": "Early stopping",
    "images_per_second": "Training images per second",
    "wall_time_seconds": "Wall time (s)",
    "command": "Command",
}
_DATA_LABELS = {
    "crops": "Face crops used",
    "real": "Real",
    "fake": "Fake",
    "train": "Training crops",
    "validation": "Validation crops",
    "groups": "Source videos",
    "mtcnn_fallbacks": "Crops where MTCNN found no face",
    "split": "Split",
    "preparation": "Preparation",
    "augmentation": "Augmentation",
}


@login_required
@require_GET
def model_card(request: HttpRequest) -> HttpResponseBase:
    """The page; with `?plot=roc` or `?plot=reliability`, that plot of the running model."""
    from detection.ml.evaluation import PLOT_KINDS, plot_path

    checkpoint = Path(settings.DEEPFAKE_CHECKPOINT)
    kind = request.GET.get("plot")
    if kind is not None:
        if kind not in PLOT_KINDS:
            raise Http404("No such plot")
        return _png_response(plot_path(checkpoint, kind))
    context = _card_context(checkpoint)
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


def _card_context(checkpoint: Path) -> dict[str, Any]:
    installed = checkpoint.is_file()
    card, card_problem = _read_card(checkpoint.with_suffix(".json"))
    raw_data = card.get("training_data")
    data = _section(card, "training_data")
    metrics = _section(card, "metrics")
    thresholds = _section(card, "thresholds")
    calibration = _section(card, "calibration")
    metric_sets = [
        {"title": name.replace("_", " ").capitalize(), "rows": _labelled(values, _METRIC_LABELS)}
        for name, values in metrics.items()
        if isinstance(values, dict)
    ]
    if any(not isinstance(value, dict | str) for value in metrics.values()):
        # Cards like the published one list their numbers without a named set.
        metric_sets.append({"title": "Reported", "rows": _labelled(metrics, _METRIC_LABELS)})
    return {
        "installed": installed,
        "checkpoint_name": checkpoint.name,
        "card_problem": card_problem,
        "name": str(card.get("name", checkpoint.stem)),
        "version": _version(checkpoint) if installed else None,
        # Without a card nothing says the weights were trained (as the pipeline assumes).
        "trained": card.get("trained") is True,
        "architecture": card.get("architecture"),
        "input_size": card.get("input_size", 256),
        "created": card.get("created"),
        "data_summary": data.get("dataset") if data else raw_data,
        "licence": data.get("licence"),
        # The dataset and its licence have their own places on the page.
        "data_facts": _labelled(
            {key: value for key, value in data.items() if key not in ("dataset", "licence")},
            _DATA_LABELS,
        ),
        "metric_sets": metric_sets,
        "metric_notes": [value for value in metrics.values() if isinstance(value, str)],
        "flag_threshold": thresholds.get("flag", settings.FLAG_THRESHOLD),
        "uncertain_threshold": thresholds.get("uncertain", settings.UNCERTAIN_THRESHOLD),
        "thresholds_from_card": bool(thresholds),
        "threshold_selection": card.get("threshold_selection"),
        "temperature": calibration.get("temperature"),
        "calibration_method": calibration.get("method"),
        "training_facts": _labelled(_section(card, "training"), _TRAINING_LABELS),
        "limitations": [str(item) for item in card.get("limitations") or []],
    }


def _section(card: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of the card; older cards hold plain text or nothing there."""
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def _read_card(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.is_file():
        return {}, None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"the model card {path.name} cannot be read: {exc}"
    if not isinstance(card, dict):
        return {}, f"the model card {path.name} is not a JSON object"
    return card, None


def _labelled(values: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(label, shown value) for the known keys in their order, then the remaining scalars."""
    known = [key for key in labels if key in values]
    others = sorted(key for key in values if key not in labels)
    return [
        (labels.get(key, key.replace("_", " ").capitalize()), _shown(values[key]))
        for key in known + others
        if isinstance(values[key], str | int | float | bool) or values[key] is None
    ]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        # Rates and scores need four decimals; seconds and throughputs do not.
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def _version(checkpoint: Path) -> str:
    stat = checkpoint.stat()
    return _file_version(str(checkpoint), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_version(path: str, _mtime_ns: int, _size: int) -> str:
    # The pipeline's version string (first 12 hex digits of the sha256); cached per file
    # state so that the page does not hash 47 MB on every view. The classifier module has
    # the same function but imports torch, which the web process must not load.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
