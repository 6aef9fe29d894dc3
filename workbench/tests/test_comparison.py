"""compare_models: whether a trained model may replace the shipped one, check by check."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from detection.ml.card import Evaluation, ModelCard, Thresholds, write_card
from workbench import evaluation
from workbench.training.comparison import DEV_CHECKS, Difference, Outcome, compare
from workbench.training.paired import ScoredModel, paired_differences
from workbench.training.report import ScoredSet

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


def _scored_set(
    probabilities: list[float],
    labels: list[int],
    prefix: str = "face",
    groups: list[str] | None = None,
) -> ScoredSet:
    names = tuple(f"{prefix}{index}" for index in range(len(labels)))
    return ScoredSet(
        names=names,
        probabilities=np.array(probabilities, dtype=np.float64),
        labels=np.array(labels, dtype=np.float64),
        groups=names if groups is None else tuple(groups),
    )


def _validation_model(
    probabilities: np.ndarray, labels: np.ndarray, groups: list[str] | None = None
) -> ScoredModel:
    return ScoredModel(
        {"dfdc_validation": _scored_set(list(probabilities), list(labels), groups=groups)},
        Thresholds(flag=0.8, uncertain=0.7),
    )


def test_a_clear_gain_is_beyond_noise_and_a_reshuffle_of_the_same_skill_is_not() -> None:
    generator = np.random.default_rng(1)
    labels = np.repeat([0, 1], 300)
    shipped = 1 / (1 + np.exp(-(generator.normal(size=600) + 0.6 * labels)))
    sharper = 1 / (1 + np.exp(-(generator.normal(size=600) + 2.0 * labels)))
    as_good = 1 / (1 + np.exp(-(generator.normal(size=600) + 0.6 * labels)))

    gain = paired_differences(
        _validation_model(shipped, labels), _validation_model(sharper, labels), resamples=300
    )["DFDC validation AUC"]
    same_skill = paired_differences(
        _validation_model(shipped, labels), _validation_model(as_good, labels), resamples=300
    )["DFDC validation AUC"]

    sharper_auc, shipped_auc = (
        evaluation.roc_auc(sharper, labels),
        evaluation.roc_auc(shipped, labels),
    )
    assert sharper_auc is not None and shipped_auc is not None
    assert gain.value == pytest.approx(sharper_auc - shipped_auc)
    assert 0 < gain.low < gain.value < gain.high and not gain.within_noise
    assert same_skill.within_noise
    # Only the checks both models were scored for are measured.
    assert "GAN faces AUC (out of scope)" not in paired_differences(
        _validation_model(shipped, labels), _validation_model(sharper, labels), resamples=10
    )


def test_faces_of_one_video_are_drawn_together_which_widens_the_interval() -> None:
    # 40 videos of 10 faces: within a video the candidate's edge is the same for every face,
    # so the set holds 40 pieces of evidence, not 400.
    generator = np.random.default_rng(2)
    labels = np.tile(np.repeat([0, 1], 5), 40)
    videos = [f"video{index // 10}" for index in range(400)]
    per_video = np.repeat(generator.normal(scale=3.0, size=40), 10)
    shipped = 1 / (1 + np.exp(-(generator.normal(size=400) + labels)))
    candidate = 1 / (1 + np.exp(-(generator.normal(size=400) + labels * (1 + per_video))))

    def auc_interval(groups: list[str] | None) -> float:
        difference = paired_differences(
            _validation_model(shipped, labels, groups),
            _validation_model(candidate, labels, groups),
            resamples=400,
        )["DFDC validation AUC"]
        return difference.high - difference.low

    assert auc_interval(videos) > 1.5 * auc_interval(None)


def test_verdict_shares_are_paired_by_name_and_counted_with_each_models_thresholds() -> None:
    # The candidate found no face in frame 3; its stricter flag leaves one more real unflagged.
    shipped = ScoredModel(
        {"sample_frames": _scored_set([0.9, 0.85, 0.3, 0.95], [1, 0, 0, 1], "frame")},
        Thresholds(flag=0.8, uncertain=0.7),
    )
    candidate_frames = ScoredSet(
        names=("frame2", "frame0", "frame1"),
        probabilities=np.array([0.3, 0.92, 0.85]),
        labels=np.array([0.0, 1.0, 0.0]),
        groups=("frame2", "frame0", "frame1"),
    )
    candidate = ScoredModel({"sample_frames": candidate_frames}, Thresholds(0.9, 0.8))

    differences = paired_differences(shipped, candidate, resamples=50)

    # On frames 0-2: fakes flagged 1 of 1 for both; reals flagged 1 of 2 against 0 of 2.
    assert differences["sample frames: fakes flagged"].value == 0
    assert differences["sample frames: reals flagged"].value == pytest.approx(-0.5)
    relabelled = dataclasses.replace(candidate_frames, labels=np.array([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="differently labelled sets"):
        paired_differences(
            shipped, ScoredModel({"sample_frames": relabelled}, Thresholds(0.9, 0.8))
        )


def _cards(candidate_metrics: dict[str, dict[str, Any]]) -> tuple[ModelCard, ModelCard]:
    def card(name: str, metrics: dict[str, dict[str, Any]]) -> ModelCard:
        return ModelCard(
            name=name,
            trained=True,
            evaluations={
                key: Evaluation(title=key, metrics=value) for key, value in metrics.items()
            },
        )

    return card("shipped-model", SHIPPED_METRICS), card("candidate", candidate_metrics)


NOISE = Difference(value=-0.02, low=-0.06, high=0.02)
CLEAR_GAIN = Difference(value=0.17, low=0.15, high=0.19)


def test_a_loss_inside_the_noise_does_not_veto_a_clear_gain() -> None:
    shipped, candidate = _cards({**BETTER_METRICS, "gan_faces": {"auc": 0.54}})

    unpaired = compare(shipped, candidate)
    paired = compare(
        shipped,
        candidate,
        {"GAN faces AUC (out of scope)": NOISE, "DFDC validation AUC": CLEAR_GAIN},
    )
    beyond_noise = compare(
        shipped,
        candidate,
        {
            "GAN faces AUC (out of scope)": Difference(value=-0.02, low=-0.03, high=-0.01),
            "DFDC validation AUC": CLEAR_GAIN,
        },
    )

    assert not unpaired.beats_shipped
    assert paired.beats_shipped
    assert paired.results[-1].outcome is Outcome.WORSE_WITHIN_NOISE
    assert not beyond_noise.beats_shipped
    assert [result.check.label for result in beyond_noise.losses()] == [
        "GAN faces AUC (out of scope)"
    ]


def test_paired_a_model_must_be_better_beyond_noise_somewhere() -> None:
    shipped, candidate = _cards(BETTER_METRICS)
    within_noise_everywhere = {check.label: NOISE for check in DEV_CHECKS}

    comparison = compare(shipped, candidate, within_noise_everywhere)

    assert not comparison.losses()
    assert not comparison.beats_shipped
    assert compare(shipped, candidate).beats_shipped  # by the numbers alone, it would


def test_the_paired_verdict_names_the_gains_beyond_noise_and_the_losses_within_it(
    tmp_path: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.management.commands import compare_models

    # The scoring itself is tested end to end in test_training; here only what is said.
    monkeypatch.setattr(compare_models, "_scored", lambda checkpoint: checkpoint)
    monkeypatch.setattr(
        "workbench.training.paired.paired_differences",
        lambda shipped, candidate: {
            "DFDC validation AUC": CLEAR_GAIN,
            "GAN faces AUC (out of scope)": NOISE,
        },
    )
    candidate = _model(tmp_path, "candidate", {**BETTER_METRICS, "gan_faces": {"auc": 0.54}})
    stdout = io.StringIO()

    call_command("compare_models", str(candidate), against=shipped, paired=True, stdout=stdout)

    output = stdout.getvalue()
    assert output.rstrip().endswith(
        "candidate may replace shipped-model: better beyond the noise of the held-out sets on "
        "DFDC validation AUC, and worse beyond it on none. Worse within the noise on GAN faces "
        "AUC (out of scope)."
    )
    assert re.search(
        r"0\.559 +0\.540 +-0\.020 \[-0\.060, \+0\.020\] +worse, within noise$",
        _row(output, "GAN faces AUC (out of scope)"),
    )
    assert re.search(
        r"\+0\.170 \[\+0\.150, \+0\.190\] +better", _row(output, "DFDC validation AUC")
    )
