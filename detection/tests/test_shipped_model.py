"""The model shipped under models/: only what its card promises, checked against the file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from django.conf import settings

from detection.ml.card import INCEPTION_RESNET_V1, plot_path
from detection.ml.classifier import LoadedCheckpoint, load_checkpoint, new_classifier

SHIPPED = Path(settings.BASE_DIR) / "models" / "faceproof-face-resnet-150.pth"
# GitHub refuses files over 100 MB and warns over 50 MB; fp16 weights are 9 to 47 MB.
MAX_BYTES = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> LoadedCheckpoint:
    return load_checkpoint(SHIPPED)


def test_the_shipped_model_is_the_default_checkpoint() -> None:
    if "DEEPFAKE_CHECKPOINT" in os.environ:
        pytest.skip("DEEPFAKE_CHECKPOINT is set in the environment")
    assert Path(settings.DEEPFAKE_CHECKPOINT) == SHIPPED


def test_weights_are_fp16_in_the_file_and_small_enough_to_commit() -> None:
    assert SHIPPED.stat().st_size < MAX_BYTES
    payload = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    published = {"model_state_dict", "epoch", "optimizer_state_dict", "validation_loss"}
    # Models saved since the input size went into the file carry it too, and the network
    # where it is not the published one.
    assert published <= set(payload) <= published | {"input_size", "network"}
    network = new_classifier(payload.get("network", INCEPTION_RESNET_V1))
    assert set(payload["model_state_dict"]) == set(network.state_dict())
    floating = [v for v in payload["model_state_dict"].values() if v.is_floating_point()]
    assert all(value.dtype == torch.float16 for value in floating)


def test_it_loads_as_float32_with_the_version_of_its_file(shipped: LoadedCheckpoint) -> None:
    floating = [v for v in shipped.state_dict.values() if v.is_floating_point()]
    assert all(value.dtype == torch.float32 for value in floating)
    assert shipped.version == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()[:12]


def test_card_says_trained_with_its_data_licence_and_limits(shipped: LoadedCheckpoint) -> None:
    card = shipped.card
    assert card is not None and card.trained
    assert card.input_size == shipped.input_size
    assert "research" in card.training_data["licence"]
    assert card.limitations
    assert card.training["command"].startswith("python manage.py train_detector")
    validation = card.evaluations["dfdc_validation"].metrics
    for key in ("auc", "accuracy", "tpr_at_1_fpr", "tpr_at_5_fpr", "ece", "brier"):
        assert 0 <= validation[key] <= 1, key


def test_pipeline_takes_thresholds_and_calibration_from_the_card(
    shipped: LoadedCheckpoint,
) -> None:
    assert shipped.card is not None and shipped.card.thresholds is not None
    thresholds = shipped.card.thresholds
    assert 0 <= thresholds.uncertain <= thresholds.flag <= 1
    info = shipped.model_info(flag_threshold=0.5, uncertain_threshold=0.3)
    assert (info.flag_threshold, info.uncertain_threshold) == (
        thresholds.flag,
        thresholds.uncertain,
    )
    assert info.trained and info.version == shipped.version
    assert shipped.calibration == shipped.card.calibration
    assert shipped.calibration.temperature > 0
    assert shipped.mirror_average == shipped.card.mirror_average


def test_its_settings_follow_todays_rules(shipped: LoadedCheckpoint) -> None:
    """Platt scaling, and thresholds that keep ordinary photos of real people unflagged as
    well as video faces, to budgets no looser than the limits (it replaced a model that
    flagged 0.6 % of the held-out photos: it was finished to 0.5 % and 1 %)."""
    card = shipped.card
    assert card is not None and card.thresholds is not None
    assert card.calibration.method.startswith("Platt scaling")
    assert "UTKFace photos" in card.thresholds.selection
    assert "DFDC validation real faces" in card.thresholds.selection
    assert "at most 0.5% of the" in card.thresholds.selection
    assert "uncertain: the same at 1%" in card.thresholds.selection
    photos = card.evaluations["utkface_photos"].metrics
    assert photos["flagged_fake"] <= 0.02 and photos["flagged_uncertain"] <= 0.05


def test_its_photo_check_is_broken_down_by_whom_the_photos_show(
    shipped: LoadedCheckpoint,
) -> None:
    """Every held-out photo counts once by age, once by gender and once by ethnicity, and the
    summary says whether any group's photos are flagged more than chance would."""
    card = shipped.card
    assert card is not None
    photos = card.evaluations["utkface_photos"]
    for attribute in ("age", "gender", "ethnicity"):
        groups = [group for group in photos.by_group if group.attribute == attribute]
        assert sum(group.count for group in groups) == photos.metrics["count"], attribute
        judged = sum(group.judged_fake for group in groups) / photos.metrics["count"]
        assert judged == pytest.approx(photos.metrics["flagged_fake"], abs=1e-6)
    assert any(sentence.startswith("By age, gender and ethnicity") for sentence in card.summary)


def test_its_plots_sit_beside_it() -> None:
    for kind in ("roc", "reliability"):
        assert plot_path(SHIPPED, kind).read_bytes().startswith(b"\x89PNG")
