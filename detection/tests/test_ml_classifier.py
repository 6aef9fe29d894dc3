"""Checkpoints: both formats load, every defect is named, the model card is honoured."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detection.ml.card import ModelCard, card_path, write_card
from detection.ml.classifier import (
    CheckpointError,
    FaceClassifier,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)


@pytest.fixture(scope="module")
def demo(demo_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(demo_checkpoint)


def _save(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def test_published_format_loads_with_its_model_card(demo: LoadedCheckpoint) -> None:
    assert len(demo.state_dict) == 716
    assert demo.card is not None and demo.card.trained is False
    info = demo.model_info(flag_threshold=0.5, uncertain_threshold=0.3)
    assert info.trained is False
    assert info.input_size == 256
    assert info.name.startswith("demo-untrained")


def test_bare_state_dict_loads_too(demo: LoadedCheckpoint, tmp_path: Path) -> None:
    bare = _save(tmp_path / "bare.pth", demo.state_dict)
    loaded = verify_checkpoint(bare)
    assert loaded.state_dict.keys() == demo.state_dict.keys()
    # No card beside it: nothing claims the weights were trained.
    assert loaded.model_info(flag_threshold=0.5, uncertain_threshold=0.3).trained is False


def _saved_with_a_card_at(size: int, demo: LoadedCheckpoint, path: Path) -> ModelCard:
    assert demo.card is not None
    card = dataclasses.replace(demo.card, input_size=size)
    save_checkpoint(path, demo.state_dict, card)
    return card


def test_weights_parted_from_their_card_are_still_read_at_their_own_size(
    demo: LoadedCheckpoint, tmp_path: Path
) -> None:
    _saved_with_a_card_at(96, demo, tmp_path / "ema.pth")
    copied = tmp_path / "copy.pth"
    shutil.copyfile(tmp_path / "ema.pth", copied)  # the card beside it stays behind

    loaded = load_checkpoint(copied)

    assert loaded.card is None and loaded.input_size == 96
    info = loaded.model_info(flag_threshold=0.5, uncertain_threshold=0.3)
    assert info.input_size == 96 and info.trained is False
    # Weights without a card (a GPU run's raw weights) can say their size too.
    save_checkpoint(tmp_path / "raw.pth", demo.state_dict, None, input_size=160)
    assert load_checkpoint(tmp_path / "raw.pth").input_size == 160


def test_a_card_that_contradicts_its_weights_size_is_refused(
    demo: LoadedCheckpoint, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "model.pth"
    card = _saved_with_a_card_at(96, demo, checkpoint)
    write_card(checkpoint, dataclasses.replace(card, input_size=160))
    with pytest.raises(CheckpointError, match="saved for 96 px faces but its model card says 160"):
        load_checkpoint(checkpoint)


def test_weights_parted_from_their_card_still_cut_the_face_box_as_trained(
    demo: LoadedCheckpoint, tmp_path: Path
) -> None:
    assert demo.card is not None
    cut = dataclasses.replace(demo.card, input_size=96, crop_top_cut=0.2)
    save_checkpoint(tmp_path / "ema.pth", demo.state_dict, cut)
    shutil.copyfile(tmp_path / "ema.pth", tmp_path / "copy.pth")  # the card stays behind
    assert load_checkpoint(tmp_path / "ema.pth").crop_top_cut == 0.2
    copied = load_checkpoint(tmp_path / "copy.pth")
    assert copied.card is None and (copied.input_size, copied.crop_top_cut) == (96, 0.2)
    # A card that says otherwise belongs to other weights, whichever way it differs.
    write_card(tmp_path / "ema.pth", dataclasses.replace(cut, crop_top_cut=0.0))
    with pytest.raises(CheckpointError, match=r"without the top 0\.2 of the face box"):
        load_checkpoint(tmp_path / "ema.pth")
    _saved_with_a_card_at(96, demo, tmp_path / "whole.pth")
    write_card(tmp_path / "whole.pth", cut)
    with pytest.raises(CheckpointError, match=r"its model card says 0\.2"):
        load_checkpoint(tmp_path / "whole.pth")


def test_model_version_is_the_files_short_sha256(demo: LoadedCheckpoint) -> None:
    digest = hashlib.sha256(demo.path.read_bytes()).hexdigest()
    assert demo.version == digest[:12]


def test_missing_checkpoint_names_the_path_and_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nowhere\.pth.*fetch_model"):
        load_checkpoint(tmp_path / "nowhere.pth")


def test_corrupted_checkpoint_is_reported_unreadable(demo_checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    with demo_checkpoint.open("rb") as source:
        truncated.write_bytes(source.read(1 << 20))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
            load_checkpoint(path)


def test_wrong_shape_checkpoint_names_the_mismatched_tensor(
    demo: LoadedCheckpoint, tmp_path: Path
) -> None:
    weights = dict(demo.state_dict)
    weights["logits.weight"] = torch.zeros(2, 512)  # a two-class head
    weights["logits.bias"] = torch.zeros(2)
    path = _save(tmp_path / "two_class.pth", {"model_state_dict": weights})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "shape mismatches" in message
    assert "logits.weight (2, 512) != expected (1, 512)" in message
    assert "logits.bias (2,) != expected (1,)" in message


def test_missing_and_unexpected_keys_are_named(demo: LoadedCheckpoint, tmp_path: Path) -> None:
    weights = dict(demo.state_dict)
    del weights["last_bn.running_var"]
    weights["classifier.extra"] = torch.zeros(3)
    path = _save(tmp_path / "odd.pth", weights)
    with pytest.raises(CheckpointError, match=r"missing keys: last_bn\.running_var") as error:
        load_checkpoint(path)
    assert "unexpected keys: classifier.extra" in str(error.value)


def test_checkpoint_without_tensors_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "empty.pth", {"model_state_dict": {}, "epoch": 3})
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_checkpoint(path)


def test_model_card_thresholds_and_calibration_are_used(
    demo_checkpoint: Path, demo: LoadedCheckpoint, tmp_path: Path, calibration_crops: torch.Tensor
) -> None:
    calibrated = tmp_path / "calibrated.pth"
    shutil.copyfile(demo_checkpoint, calibrated)
    card = {
        "name": "calibrated",
        "trained": True,
        "input_size": 256,
        "thresholds": {"flag": 0.8, "uncertain": 0.6},
        "calibration": {"temperature": 2.0, "bias": -0.5},
    }
    card_path(calibrated).write_text(json.dumps(card))
    loaded = load_checkpoint(calibrated)
    info = loaded.model_info(flag_threshold=0.5, uncertain_threshold=0.3)
    assert (info.flag_threshold, info.uncertain_threshold, info.trained) == (0.8, 0.6, True)

    cpu = torch.device("cpu")
    plain = FaceClassifier(demo.state_dict, input_size=256, device=cpu)
    scaled = FaceClassifier(
        loaded.state_dict, input_size=256, calibration=loaded.calibration, device=cpu
    )
    logits = plain.classify(calibration_crops[:2]).logits
    expected = [1 / (1 + math.exp(-(logit / 2.0 - 0.5))) for logit in logits]
    assert scaled.classify(calibration_crops[:2]).probabilities == pytest.approx(expected, abs=1e-6)


def _card_with_group(**group: object) -> str:
    """A card whose photo check has one group, `group` overriding a valid one."""
    valid = {
        "attribute": "age",
        "group": "65 and over",
        "count": 10,
        "judged_fake": 1,
        "judged_uncertain": 2,
        "mean_probability": 0.3,
    }
    evaluation = {"metrics": {}, "by_group": [{**valid, **group}]}
    return json.dumps({"format": 2, "name": "m", "evaluations": {"photos": evaluation}})


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ("{not json", "not readable JSON"),
        ('{"name": "m", "thresholds": {"flag": 0.2, "uncertain": 0.6}}', "uncertain <= flag"),
        ('{"name": "m", "input_size": "big"}', "input_size"),
        ('{"name": "m", "crop_top_cut": 0.5}', "crop_top_cut must be a number from 0 to below"),
        ('{"name": "m", "crop_top_cut": -0.1}', "crop_top_cut"),
        ('{"name": "m", "network": "resnet50"}', "network must be one of inception_resnet_v1"),
        ('{"name": "m", "calibration": {"temperature": 0}}', "temperature"),
        ('{"name": "m", "calibration": {"temperature": 1, "bias": "high"}}', "bias"),
        ('{"name": "m", "trained": "yes"}', "trained must be true or false"),
        ('{"trained": true}', "name must be a non-empty string"),
        ('{"format": 9, "name": "m"}', "format 9 is newer"),
        (_card_with_group(judged_fake=3, judged_uncertain=2), "judged_fake <= judged_uncertain"),
        (_card_with_group(count=0, judged_fake=0, judged_uncertain=0), "count > 0"),
        (_card_with_group(mean_probability=1.5), "mean_probability"),
        (_card_with_group(group=""), "attribute and a name"),
        (
            '{"format": 2, "name": "m", "evaluations": {"p": {"metrics": {}, "by_group": {}}}}',
            "list",
        ),
    ],
)
def test_invalid_model_card_is_refused(
    demo_checkpoint: Path, tmp_path: Path, card: str, problem: str
) -> None:
    checkpoint = tmp_path / "model.pth"
    checkpoint.symlink_to(demo_checkpoint)
    card_path(checkpoint).write_text(card)
    with pytest.raises(CheckpointError, match=problem):
        load_checkpoint(checkpoint)


def test_demo_checkpoint_output_depends_on_the_face(
    demo: LoadedCheckpoint, calibration_crops: torch.Tensor
) -> None:
    classifier = FaceClassifier(demo.state_dict, input_size=256, device=torch.device("cpu"))
    probabilities = classifier.classify(calibration_crops).probabilities
    assert len(probabilities) >= 3
    assert 0.1 < np.ptp(probabilities) <= 1


def test_mirror_averaging_scores_the_face_and_its_mirror_image_and_explains_the_face(
    demo: LoadedCheckpoint, calibration_crops: torch.Tensor
) -> None:
    cpu = torch.device("cpu")
    plain = FaceClassifier(demo.state_dict, input_size=256, device=cpu)
    mirrored = FaceClassifier(demo.state_dict, input_size=256, device=cpu, mirror_average=True)
    crops = calibration_crops[:3]
    own = plain.classify(crops)
    flipped = plain.classify(crops.flip(3))
    both = mirrored.classify(crops)
    np.testing.assert_allclose(both.logits, (own.logits + flipped.logits) / 2, atol=1e-5)
    np.testing.assert_allclose(both.activations, own.activations, atol=1e-5)
    assert not np.allclose(own.logits, flipped.logits), "the mirror image scores differently"
