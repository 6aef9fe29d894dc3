"""Evaluation metrics against hand-computed values, the plots, and `evaluate_detector`."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from detection.ml.card import read_card
from detection.models import Submission
from moderation import services
from moderation.models import ReviewCase
from moderation.tests.factories import ModeratorFactory, SubmissionFactory
from moderation.tests.test_export_decisions import decided_photos
from workbench import evaluation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_auc_is_the_share_of_fake_real_pairs_ordered_correctly() -> None:
    # Fake 0.35 beats real 0.1 but not real 0.4; fake 0.8 beats both: 3 of 4 pairs.
    assert evaluation.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)


def test_auc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert evaluation.roc_auc([0.5, 0.5, 0.2], [0, 1, 0]) == pytest.approx(0.75)
    assert evaluation.roc_auc([0.3, 0.9], [1, 1]) is None


def test_auc_interval_uses_delong_variance() -> None:
    # Fakes 0.9 and 0.4 outrank 2/2 and 1/2 real faces; reals 0.5 and 0.1 are outranked by
    # 1/2 and 2/2 fakes: variance 0.125 / 2 + 0.125 / 2, standard error sqrt(0.125).
    interval = evaluation.auc_interval([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0])
    assert interval is not None
    low, high = interval
    assert low == pytest.approx(0.75 - 1.959964 * math.sqrt(0.125), abs=1e-6)
    assert high == 1.0  # clipped
    assert evaluation.auc_interval([0.9, 0.4, 0.5], [1, 1, 0]) is None


def test_auc_interval_matches_pairwise_delong_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(60), 1)  # rounding makes ties
    labels = (rng.random(60) < 0.4).astype(int)
    fakes, reals = scores[labels == 1], scores[labels == 0]
    pairs = (fakes[:, None] > reals[None, :]) + 0.5 * (fakes[:, None] == reals[None, :])
    variance = np.var(pairs.mean(1), ddof=1) / len(fakes) + np.var(pairs.mean(0), ddof=1) / len(
        reals
    )
    interval = evaluation.auc_interval(scores, labels)
    assert interval is not None
    low, high = interval
    auc = pairs.mean()
    assert (auc - low, high - auc) == pytest.approx((1.959964 * math.sqrt(variance),) * 2)


def test_few_images_cannot_tell_a_middling_auc_from_chance_many_can() -> None:
    rng = np.random.default_rng(0)

    def interval(per_class: int) -> tuple[float, float]:
        scores = np.r_[rng.normal(0.65, 1, per_class), rng.normal(0, 1, per_class)]
        found = evaluation.auc_interval(scores, [1] * per_class + [0] * per_class)
        assert found is not None
        return found

    few, many = interval(17), interval(2000)
    assert few[0] < 0.5 < few[1]
    assert 0.5 < many[0] < many[1] < 0.8


def test_rank_correlation_follows_order_not_size_and_shares_ties() -> None:
    assert evaluation.rank_correlation([1, 2, 3, 4], [10, 200, 3000, 40000]) == pytest.approx(1)
    assert evaluation.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # Ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4: covariance 1.125, variances 1.125 and 1.25.
    assert evaluation.rank_correlation([1, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(
        1.125 / math.sqrt(1.125 * 1.25)
    )
    assert evaluation.rank_correlation([3, 3, 3], [1, 2, 3]) is None
    with pytest.raises(ValueError, match="3 values against 2"):
        evaluation.rank_correlation([1, 2, 3], [1, 2])


def test_accuracy_counts_threshold_itself_as_fake() -> None:
    assert evaluation.accuracy_at([0.1, 0.5, 0.49, 0.9], [0, 1, 1, 1], 0.5) == pytest.approx(0.75)


def test_threshold_at_fpr_flags_at_most_that_share_of_real_faces() -> None:
    reals = np.arange(100) / 100  # 0.00 .. 0.99
    labels = np.zeros(100)
    threshold = evaluation.threshold_at_fpr(reals, labels, 0.01)
    assert 0.98 < threshold <= 0.99
    assert np.mean(reals >= threshold) == pytest.approx(0.01)
    assert np.mean(reals >= evaluation.threshold_at_fpr(reals, labels, 0.05)) == pytest.approx(0.05)


def test_tpr_at_fpr_is_the_share_of_fakes_above_that_cut() -> None:
    scores = np.r_[np.arange(100) / 100, [0.985, 0.5, 0.99, 0.97]]
    labels = np.r_[np.zeros(100), np.ones(4)]
    # At 1 % FPR the cut lies just above 0.98: fakes 0.985 and 0.99 are caught.
    assert evaluation.tpr_at_fpr(scores, labels, 0.01) == pytest.approx(0.5)


def test_ece_weights_each_bins_gap_by_its_faces() -> None:
    # Bin of 0.1: mean 0.1, half fake (gap 0.4); bin of 0.9: mean 0.9, all fake (gap 0.1).
    probabilities, labels = [0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]
    assert evaluation.expected_calibration_error(probabilities, labels) == pytest.approx(0.25)
    assert evaluation.expected_calibration_error([1.0, 0.0], [1, 0]) == pytest.approx(0.0)


def test_brier_is_the_mean_squared_error_of_the_probability() -> None:
    assert evaluation.brier_score([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx(0.21)


def test_metrics_per_source_split_the_faces() -> None:
    found = evaluation.metrics_by_source(
        [0.1, 0.9, 0.2, 0.3], [0, 1, 0, 1], ["a", "a", "b", "b"], threshold=0.5
    )
    assert sorted(found) == ["a", "b"]
    assert found["a"].auc == 1.0 and found["a"].accuracy == 1.0
    assert found["b"].count == 2 and found["b"].fakes == 1 and found["b"].accuracy == 0.5


def test_roc_curve_runs_from_origin_to_the_corner() -> None:
    false_rate, true_rate = evaluation.roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert (false_rate[0], true_rate[0]) == (0.0, 0.0)
    assert (false_rate[-1], true_rate[-1]) == (1.0, 1.0)
    assert np.all(np.diff(false_rate) >= 0) and np.all(np.diff(true_rate) >= 0)


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    probabilities, labels = [0.1, 0.4, 0.35, 0.8, 0.95, 0.05], [0, 0, 1, 1, 1, 0]
    evaluation.plot_roc({"all": (probabilities, labels)}, tmp_path / "roc.png", title="t")
    evaluation.plot_reliability(probabilities, labels, tmp_path / "rel.png", title="t")
    for name in ("roc.png", "rel.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)


def _labels_csv(tmp_path: Path, samples_dir: Path) -> Path:
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (320, 240), "white").save(blank)
    rows = [
        (samples_dir / "real_frame_3.jpg", "real", "ffpp"),
        (samples_dir / "real_frame_1.jpg", "real", "ffpp"),
        (samples_dir / "fake_frame_0.jpg", "fake", "ffpp"),
        (samples_dir / "fake_frame_2.jpg", "fake", "other"),
        (Path("blank.jpg"), "real", "other"),  # relative to the labels file; no face
    ]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "source"])
        writer.writerows((str(path), label, source) for path, label, source in rows)
    return labels


def test_evaluate_detector_json_reports_numbers_sources_and_items(
    demo_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    labels = _labels_csv(tmp_path, samples_dir)
    stdout = io.StringIO()
    call_command(
        "evaluate_detector",
        labels=labels,
        checkpoint=demo_checkpoint,
        json=True,
        plots=tmp_path / "plots",
        stdout=stdout,
    )
    report = json.loads(stdout.getvalue())
    assert report["images"] == 5 and report["scored"] == 4 and report["no_face"] == 1
    assert report["model"]["trained"] is False
    assert report["metrics"]["count"] == 4 and report["metrics"]["fakes"] == 2
    assert 0 <= report["metrics"]["auc"] <= 1
    assert set(report["metrics"]) >= {"accuracy", "tpr_at_1_fpr", "tpr_at_5_fpr", "ece", "brier"}
    assert set(report["per_source"]) == {"ffpp", "other"}
    assert report["per_source"]["other"]["count"] == 1
    blank = next(item for item in report["items"] if item["path"].endswith("blank.jpg"))
    assert blank == {
        "path": str(tmp_path / "blank.jpg"),
        "label": "real",
        "source": "other",
        "status": "no_face",
        "verdict": None,
        "fake_probability": None,
    }
    scored = [item for item in report["items"] if item["status"] == "ok"]
    assert all(0 <= item["fake_probability"] <= 1 and item["verdict"] for item in scored)
    for name in ("roc.png", "reliability.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_evaluate_detector_reads_a_json_list_and_prints_a_table(
    demo_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            [
                {"path": str(samples_dir / "real_frame_3.jpg"), "label": 0},
                {"path": str(samples_dir / "fake_frame_0.jpg"), "label": 1},
            ]
        )
    )
    stdout = io.StringIO()
    call_command(
        "evaluate_detector",
        labels=labels,
        checkpoint=demo_checkpoint,
        plots=tmp_path,
        stdout=stdout,
    )
    output = stdout.getvalue()
    assert "UNTRAINED" in output and "AUC" in output and "ALL" in output


def test_evaluate_detector_rejects_unknown_labels(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nx.jpg,maybe\n")
    with pytest.raises(CommandError, match="maybe"):
        call_command("evaluate_detector", labels=labels)


def test_metrics_of_an_empty_set_are_not_numbers() -> None:
    assert math.isnan(evaluation.brier_score([], []))


def test_evaluate_detector_records_its_numbers_in_the_model_card(
    demo_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "model.pth"
    checkpoint.symlink_to(demo_checkpoint)
    (tmp_path / "model.json").write_text(demo_checkpoint.with_suffix(".json").read_text())
    call_command(
        "evaluate_detector",
        labels=_labels_csv(tmp_path, samples_dir),
        checkpoint=checkpoint,
        record_as="sample_frames",
        plots=tmp_path,
        stdout=io.StringIO(),
    )
    card = read_card(checkpoint)
    assert card is not None
    recorded = card.evaluations["sample_frames"]
    assert recorded.metrics["count"] == 4
    assert "left out: 1 without a face, 0 with no face good enough to judge" in recorded.note
    with pytest.raises(CommandError, match="reserved"):
        call_command(
            "evaluate_detector",
            labels=_labels_csv(tmp_path, samples_dir),
            checkpoint=checkpoint,
            record_as="dfdc_validation",
            plots=tmp_path,
            stdout=io.StringIO(),
        )


@pytest.mark.django_db
def test_evaluate_detector_measures_the_model_on_exported_decisions(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    moderator = ModeratorFactory.create()

    def make_case(*, faces: int, fake_probability: float) -> ReviewCase:
        submission = SubmissionFactory.create(fake_probability=fake_probability)
        case = services.review_case_open(submission=submission)
        assert case is not None
        return case

    decided_photos(make_case, moderator)
    call_command("export_decisions", output=tmp_path / "export", stdout=io.StringIO())
    stdout = io.StringIO()
    call_command(
        "evaluate_detector",
        labels=tmp_path / "export" / "labels.csv",
        checkpoint=demo_checkpoint,
        json=True,
        plots=tmp_path / "plots",
        stdout=stdout,
    )
    report = json.loads(stdout.getvalue())
    assert (report["images"], report["scored"], report["errors"]) == (2, 2, 0)
    assert report["metrics"]["fakes"] == 1 and report["metrics"]["reals"] == 1
    assert report["per_source"]["moderation-flagged"]["count"] == 2
    assert all(0 <= item["fake_probability"] <= 1 for item in report["items"])
    assert Submission.objects.count() == 3, "evaluating reads; it stores nothing"
