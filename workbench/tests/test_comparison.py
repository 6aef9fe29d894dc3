"""compare_models: whether a trained model may replace the shipped one, check by check."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from detection.ml.card import Evaluation, ModelCard, Thresholds, write_card

SHIPPED_METRICS = {
    "dfdc_validation": {
        "auc": 0.69,
        "auc_low": 0.675,
        "auc_high": 0.706,
        "tpr_at_1_fpr": 0.116,
        "tpr_at_5_fpr": 0.221,
        "ece": 0.015,
    },
    "utkface_photos": {"count": 1467, "flagged_fake": 0.0061, "flagged_uncertain": 0.0102},
    "sample_frames": {
        "auc": 0.684,
        "fakes": 19,
        "reals": 14,
        "fakes_flagged": 0,
        "reals_flagged": 0,
    },
    "gan_faces": {"auc": 0.559},
}
# Better than SHIPPED_METRICS on every check but one tie (no real frame flagged by either).
BETTER_METRICS = {
    "dfdc_validation": {"auc": 0.86, "tpr_at_1_fpr": 0.3, "tpr_at_5_fpr": 0.47, "ece": 0.012},
    "utkface_photos": {"count": 1467, "flagged_fake": 0.0048, "flagged_uncertain": 0.0095},
    "sample_frames": {
        "auc": 0.77,
        "fakes": 18,
        "reals": 15,
        "fakes_flagged": 3,
        "reals_flagged": 0,
    },
    "gan_faces": {"auc": 0.6},
}


def _model(folder: Path, name: str, metrics: dict[str, dict[str, Any]]) -> Path:
    checkpoint = folder / f"{name}.pth"
    checkpoint.write_bytes(b"weights")
    card = ModelCard(
        name=name,
        trained=True,
        thresholds=Thresholds(flag=0.8, uncertain=0.7),
        evaluations={key: Evaluation(title=key, metrics=values) for key, values in metrics.items()},
    )
    write_card(checkpoint, card)
    return checkpoint


def _compare(candidate: Path, against: Path | None = None) -> str:
    stdout = io.StringIO()
    options = {} if against is None else {"against": against}
    call_command("compare_models", str(candidate), stdout=stdout, **options)
    return stdout.getvalue()


def _row(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(label))


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    return _model(tmp_path, "shipped-model", SHIPPED_METRICS)


def test_a_model_better_on_every_check_may_replace_the_shipped_one(
    tmp_path: Path, shipped: Path
) -> None:
    output = _compare(_model(tmp_path, "candidate", BETTER_METRICS), shipped)

    assert output.rstrip().endswith(
        "candidate beats shipped-model on every dev check: it may ship."
    )
    assert re.search(
        r"DFDC validation AUC +0\.690 \[0\.675-0\.706\] +0\.860 +better +≥ 0\.85: met", output
    )
    assert re.search(r"real photos judged fake +0\.61% +0\.48% +better +≤ 2%: met", output)
    assert re.search(r"sample frames: reals flagged +0 of 14 +0 of 15 +same", output)
    assert re.search(r"DFDC validation ECE +0\.015 +0\.012 +better +≤ 0\.05: met", output)


def test_one_worse_check_keeps_the_shipped_model_and_is_named(
    tmp_path: Path, shipped: Path
) -> None:
    metrics = {
        **BETTER_METRICS,
        "utkface_photos": {"flagged_fake": 0.0184, "flagged_uncertain": 0.034},
    }
    output = _compare(_model(tmp_path, "candidate", metrics), shipped)

    assert output.rstrip().endswith(
        "candidate does not beat shipped-model on every dev check: real photos judged fake "
        "(worse), real photos uncertain or fake (worse)."
    )
    # Worse than the shipped model, yet inside the goal: both are shown.
    assert re.search(r"real photos judged fake +0\.61% +1\.84% +worse +≤ 2%: met", output)


def test_a_check_the_candidate_was_never_measured_on_counts_against_it(
    tmp_path: Path, shipped: Path
) -> None:
    metrics = {key: value for key, value in BETTER_METRICS.items() if key != "sample_frames"}
    output = _compare(_model(tmp_path, "candidate", metrics), shipped)

    assert "sample frames AUC (not measured)" in output.splitlines()[-1]
    assert re.search(
        r"sample frames AUC +0\.684 +not measured +not measured +≥ 0\.75$",
        _row(output, "sample frames AUC"),
    )


def test_the_same_numbers_are_no_reason_to_ship(tmp_path: Path, shipped: Path) -> None:
    output = _compare(_model(tmp_path, "copy", SHIPPED_METRICS), shipped)

    assert output.rstrip().endswith("copy is no better than shipped-model on any dev check.")
    assert "better" not in output.replace("no better", "")


def test_goals_are_the_candidates_own_whatever_the_shipped_model_does(
    tmp_path: Path, shipped: Path
) -> None:
    metrics = {
        **BETTER_METRICS,
        "dfdc_validation": {**BETTER_METRICS["dfdc_validation"], "auc": 0.8},
    }
    output = _compare(_model(tmp_path, "candidate", metrics), shipped)

    assert re.search(r"better +≥ 0\.85: missed", _row(output, "DFDC validation AUC"))
    assert _row(output, "GAN faces AUC (out of scope)").rstrip().endswith("better")


def test_by_default_it_compares_with_the_model_the_service_runs(
    tmp_path: Path, shipped: Path, settings: Any
) -> None:
    settings.DEEPFAKE_CHECKPOINT = str(shipped)

    output = _compare(_model(tmp_path, "candidate", BETTER_METRICS))

    assert output.startswith(
        f"candidate ({tmp_path / 'candidate.pth'}) against shipped-model ({shipped})"
    )


def test_a_model_without_a_trained_card_is_refused(tmp_path: Path, shipped: Path) -> None:
    bare = tmp_path / "bare.pth"
    bare.write_bytes(b"weights")
    with pytest.raises(CommandError, match=r"bare\.pth has no trained model card: finish its run"):
        _compare(bare, shipped)
    with pytest.raises(CommandError, match=r"missing\.pth does not exist"):
        _compare(tmp_path / "missing.pth", shipped)


def test_frame_counts_are_compared_as_shares_of_the_frames_each_model_found_faces_in(
    tmp_path: Path,
) -> None:
    frames = {"auc": 0.7, "fakes": 19, "reals": 14, "fakes_flagged": 2, "reals_flagged": 1}
    shipped = _model(tmp_path, "shipped-model", {**SHIPPED_METRICS, "sample_frames": frames})
    fewer_faces = {**frames, "fakes": 16, "reals": 10}
    output = _compare(
        _model(tmp_path, "candidate", {**BETTER_METRICS, "sample_frames": fewer_faces}), shipped
    )

    # The same counts: 2 of 16 fakes is more of them, 1 of 10 reals is more of them too.
    assert re.search(r"2 of 19 +2 of 16 +better$", _row(output, "sample frames: fakes flagged"))
    assert re.search(r"1 of 14 +1 of 10 +worse$", _row(output, "sample frames: reals flagged"))
