"""Run the full pipeline over a labelled image set and report how well the model separates it."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from detection.management.analyzer import command_analyzer

_LABEL_VALUES = {"fake": 1, "1": 1, "real": 0, "0": 0}


@dataclasses.dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # 1 fake, 0 real
    source: str
    # A face set's entry (`file` under faces/, e.g. what export_decisions writes) is a face
    # crop the pipeline already cut: it is scored as it is, without detection.
    face_crop: bool = False


def read_labelled_images(labels_file: Path) -> list[LabelledImage]:
    """A CSV with columns path,label[,source] or a JSON list of such objects, or a face
    set's labels.csv (file,label[,group,source], crops under faces/ beside it).

    Relative paths are relative to the labels file; labels are fake/real or 1/0.
    """
    try:
        text = labels_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {labels_file}: {exc}") from exc
    if labels_file.suffix.lower() == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{labels_file} is not valid JSON: {exc}") from exc
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise CommandError(f"{labels_file} must hold a JSON list of objects")
    else:
        entries = list(csv.DictReader(text.splitlines()))
    images = []
    for number, entry in enumerate(entries, start=1):
        face_crop = "file" in entry and "path" not in entry
        if face_crop:
            entry = {**entry, "path": Path("faces") / str(entry["file"])}
        if "path" not in entry or "label" not in entry:
            raise CommandError(f"{labels_file}, entry {number}: needs 'path' and 'label'")
        label = _LABEL_VALUES.get(str(entry["label"]).strip().lower())
        if label is None:
            raise CommandError(
                f"{labels_file}, entry {number}: label {entry['label']!r} is not fake/real/1/0"
            )
        path = Path(str(entry["path"]))
        images.append(
            LabelledImage(
                path=path if path.is_absolute() else labels_file.parent / path,
                label=label,
                source=str(entry.get("source") or "all"),
                face_crop=face_crop,
            )
        )
    if not images:
        raise CommandError(f"{labels_file} lists no images")
    return images


class Command(BaseCommand):
    help = (
        "Analyse every image of a labelled set (CSV path,label[,source] or JSON list) with the "
        "full pipeline; print AUC, accuracy at the flag threshold, TPR at 1 %% and 5 %% FPR, "
        "ECE and Brier score, overall and per source; write roc.png and reliability.png. "
        "Images without a face are reported and left out of the numbers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--labels", type=Path, required=True, help="CSV or JSON file")
        parser.add_argument("--checkpoint", type=Path, help="default: settings.DEEPFAKE_CHECKPOINT")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--record-as",
            metavar="NAME",
            help="also store the overall numbers in the checkpoint's model card as the "
            "evaluation NAME, so that the model card page shows how the model did on this set",
        )
        parser.add_argument(
            "--out-of-domain",
            action="store_true",
            help="with --record-as: the set differs in kind from the training data (the pages "
            "then warn that scores on such data are less reliable)",
        )
        parser.add_argument(
            "--plots",
            type=Path,
            help="folder for roc.png and reliability.png (default: var/evaluation)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.images import UnreadableImageError
        from detection.ml.pipeline import INCONCLUSIVE
        from workbench import evaluation
        from workbench.training.report import TRAINING_EVALUATIONS

        record_as: str | None = options["record_as"]
        # Training's own numbers are what the thresholds were chosen on; never overwrite them.
        if record_as and record_as in TRAINING_EVALUATIONS:
            raise CommandError(f"--record-as {record_as}: that name is reserved for training")
        images = read_labelled_images(options["labels"])
        checkpoint = options["checkpoint"] or Path(settings.DEEPFAKE_CHECKPOINT)
        analyzer = command_analyzer(checkpoint=checkpoint)
        model = analyzer.model

        items = []
        for image in images:
            item: dict[str, Any] = {
                "path": str(image.path),
                "label": "fake" if image.label else "real",
                "source": image.source,
            }
            try:
                result = (
                    _scored_crop(analyzer, image.path)
                    if image.face_crop
                    else analyzer.analyze(image.path)
                )
            except UnreadableImageError as exc:
                item.update(status="error", verdict=None, fake_probability=None, error=str(exc))
            else:
                item.update(
                    # A photo whose faces are all too poor to judge has no score to measure.
                    status=INCONCLUSIVE if result.verdict == INCONCLUSIVE else result.status,
                    verdict=result.verdict,
                    fake_probability=result.fake_probability,
                )
            items.append(item)

        scored = [item for item in items if item["status"] == "ok"]
        if not scored:
            raise CommandError("no image had a face: nothing to measure")
        probabilities = [item["fake_probability"] for item in scored]
        labels = [1 if item["label"] == "fake" else 0 for item in scored]
        sources = [item["source"] for item in scored]
        threshold = model.flag_threshold
        overall = evaluation.metrics(probabilities, labels, threshold=threshold)
        by_source = evaluation.metrics_by_source(
            probabilities, labels, sources, threshold=threshold
        )

        plots = Path(options["plots"] or Path(settings.BASE_DIR) / "var" / "evaluation")
        curves = {"all": (probabilities, labels)}
        if len(by_source) > 1:
            curves = {
                name: (
                    [p for p, s in zip(probabilities, sources, strict=True) if s == name],
                    [y for y, s in zip(labels, sources, strict=True) if s == name],
                )
                for name in by_source
            }
        title = f"{model.name} ({model.version})"
        evaluation.plot_roc(curves, plots / "roc.png", title=title)
        evaluation.plot_reliability(
            probabilities, labels, plots / "reliability.png", title=f"{model.name}"
        )

        report = {
            "model": {
                "name": model.name,
                "version": model.version,
                "trained": model.trained,
                "flag_threshold": model.flag_threshold,
                "uncertain_threshold": model.uncertain_threshold,
            },
            "images": len(items),
            "scored": len(scored),
            "no_face": sum(item["status"] == "no_face" for item in items),
            "inconclusive": sum(item["status"] == INCONCLUSIVE for item in items),
            "errors": sum(item["status"] == "error" for item in items),
            "metrics": overall.as_dict(),
            "per_source": {name: found.as_dict() for name, found in by_source.items()},
            "plots": {"roc": str(plots / "roc.png"), "reliability": str(plots / "reliability.png")},
            "items": items,
        }
        if record_as:
            _record_in_card(
                checkpoint,
                record_as,
                report,
                options["labels"],
                in_domain=not options["out_of_domain"],
            )
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self._print_report(report)

    def _print_report(self, report: dict[str, Any]) -> None:
        model = report["model"]
        trained = "trained" if model["trained"] else "UNTRAINED: scores mean nothing"
        self.stdout.write(
            f"model {model['name']} ({model['version']}, {trained}); flag at P(fake) >= "
            f"{model['flag_threshold']:.4f}, uncertain at >= {model['uncertain_threshold']:.4f}"
        )
        self.stdout.write(
            f"{report['images']} images: {report['scored']} scored; left out of the numbers: "
            f"{report['no_face']} without a face, {report['inconclusive']} with no face good "
            f"enough to judge, {report['errors']} unreadable"
        )
        for item in report["items"]:
            if item["status"] != "ok":
                self.stdout.write(f"  {item['status']}: {item['path']}")
        header = (
            f"{'source':<16} {'n':>5} {'fake':>5} {'AUC':>6} {'acc':>6} "
            f"{'TPR@1%':>7} {'TPR@5%':>7} {'ECE':>6} {'Brier':>6}"
        )
        self.stdout.write(header)
        rows = {"ALL": report["metrics"], **report["per_source"]}
        for name, found in rows.items():
            self.stdout.write(
                f"{name:<16} {found['count']:>5} {found['fakes']:>5} {_cell(found['auc']):>6} "
                f"{_cell(found['accuracy']):>6} {_cell(found['tpr_at_1_fpr']):>7} "
                f"{_cell(found['tpr_at_5_fpr']):>7} {_cell(found['ece']):>6} "
                f"{_cell(found['brier']):>6}"
            )
        self.stdout.write(f"plots: {report['plots']['roc']}, {report['plots']['reliability']}")


def _scored_crop(analyzer: Any, path: Path) -> Any:
    """A face crop through the classifier alone, as a one-face result of the pipeline."""
    import numpy as np
    import torch

    from detection.ml.faces import CROP_SIZE
    from detection.ml.images import load_rgb_image
    from detection.ml.pipeline import verdict_for

    crop = load_rgb_image(path).resize((CROP_SIZE, CROP_SIZE))
    pixels = torch.from_numpy(np.asarray(crop, dtype=np.float32)).permute(2, 0, 1)[None]
    probability = float(analyzer.classifier.classify(pixels).probabilities[0])
    return _CropResult(
        status="ok",
        verdict=verdict_for(probability, analyzer.model),
        fake_probability=probability,
    )


@dataclasses.dataclass(frozen=True)
class _CropResult:
    status: str
    verdict: str
    fake_probability: float


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _record_in_card(
    checkpoint: Path, name: str, report: dict[str, Any], labels_file: Path, *, in_domain: bool
) -> None:
    from detection.ml.card import CardError, Evaluation, read_card, write_card

    try:
        card = read_card(checkpoint)
    except CardError as exc:
        raise CommandError(str(exc)) from exc
    if card is None:
        raise CommandError(f"{checkpoint} has no model card to record the numbers in")
    sources = ", ".join(sorted(report["per_source"]))
    evaluation = Evaluation(
        title=name.replace("_", " ").capitalize(),
        metrics=report["metrics"],
        note=(
            f"{report['scored']} images from {labels_file.name} (sources: {sources}) through "
            "the full pipeline with `manage.py evaluate_detector`; each image's score is its "
            f"most suspicious face; left out: {report['no_face']} without a face, "
            f"{report['inconclusive']} with no face good enough to judge"
        ),
        in_domain=in_domain,
    )
    write_card(checkpoint, card.with_evaluation(name, evaluation))
