"""Training on a tiny labelled set: split, preparation, checkpoint + card, resume, fp16 load."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from PIL import Image

from detection.ml import training
from detection.ml.classifier import load_checkpoint
from detection.ml.evaluation import plot_path
from detection.ml.training import LabelledCrop, TrainingConfig, TrainingError


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, calibration_crops: torch.Tensor) -> Path:
    """Real face crops from the sample frames, scaled to DFDC's 224 px and made tighter than
    MTCNN's box; each face and its mirror form one group (labelled real and fake)."""
    root = tmp_path_factory.mktemp("dfdc")
    (root / "faces").mkdir()
    rows = []
    for index, crop in enumerate(calibration_crops[:4]):
        pixels = crop.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
        face = Image.fromarray(pixels).crop((20, 20, 140, 140)).resize((224, 224))
        for label, image in (
            ("real", face),
            ("fake", face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        ):
            name = f"{label}{index}.jpg"
            image.save(root / "faces" / name, quality=95)
            rows.append({"file": name, "label": label, "group": f"video{index}"})
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def _config(dataset: Path, tmp_path: Path, **overrides: object) -> TrainingConfig:
    settings: dict[str, object] = {
        "data_dir": dataset,
        "output": tmp_path / "models" / "tiny.pth",
        "workdir": tmp_path / "work",
        "epochs": 2,
        "batch_size": 4,
        "val_fraction": 0.5,
        "patience": 5,
        "threads": 1,
        "command": "test",
        **overrides,
    }
    return TrainingConfig(**settings)  # type: ignore[arg-type]


def test_split_never_puts_one_group_on_both_sides() -> None:
    rows = [LabelledCrop(f"{g}-{label}.jpg", label, f"g{g}") for g in range(40) for label in (0, 1)]
    train, validation = training.split_by_group(rows, 0.15, seed=3)
    assert len(validation) == 12 and len(train) == 68
    assert not {rows[i].group for i in train} & {rows[i].group for i in validation}
    assert training.split_by_group(rows, 0.15, seed=3) == (train, validation)


def test_limit_takes_whole_groups() -> None:
    rows = [LabelledCrop(f"{g}-{label}.jpg", label, f"g{g}") for g in range(40) for label in (0, 1)]
    chosen = training.limit_by_group(rows, 9, seed=0)
    assert len(chosen) == 10
    assert sum(row.label for row in chosen) == 5


def test_training_crop_goes_through_mtcnn_or_is_counted_as_a_fallback(
    tiny_dataset: Path,
) -> None:
    detector = training._new_detector()
    face = Image.open(tiny_dataset / "faces" / "real0.jpg").convert("RGB")
    crop, fell_back = training.service_face_crop(face, detector)
    assert crop.shape == (3, 160, 160) and crop.dtype == np.uint8 and not fell_back
    blank, fell_back = training.service_face_crop(Image.new("RGB", (224, 224), "grey"), detector)
    assert fell_back and blank.shape == (3, 160, 160)


def test_augmentation_keeps_the_crop_shape() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    for seed in range(6):
        augmented = training.augment_crop(crop, np.random.default_rng(seed))
        assert augmented.shape == crop.shape and augmented.dtype == np.uint8


def test_temperature_fit_undoes_a_known_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    assert training.fit_temperature(3 * true_logits, labels) == pytest.approx(3, rel=0.15)


def test_thresholds_flag_at_most_one_and_five_percent_of_reals() -> None:
    probabilities = np.r_[np.linspace(0, 0.9, 200), np.linspace(0.5, 1, 200)]
    labels = np.r_[np.zeros(200), np.ones(200)]
    thresholds = training.choose_thresholds(probabilities, labels)
    reals = probabilities[:200]
    assert thresholds["uncertain"] <= thresholds["flag"] <= 1
    assert np.mean(reals >= thresholds["flag"]) <= 0.01
    assert np.mean(reals >= thresholds["uncertain"]) <= 0.05


def test_training_writes_fp16_checkpoint_card_and_plots_and_resumes(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = _config(tiny_dataset, tmp_path)

    class Interrupted(Exception):
        pass

    def interrupt(record: training.EpochRecord) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        training.train(config, progress=False, log=lambda _: None, on_epoch_end=interrupt)
    assert (tmp_path / "work" / "tiny.last.pt").is_file()
    assert not config.output.exists()

    messages: list[str] = []
    result = training.train(
        dataclasses.replace(config, resume=True), progress=False, log=messages.append
    )
    assert any("resuming after epoch 1" in message for message in messages)
    assert [record.epoch for record in result.history] == [1, 2]

    payload = torch.load(config.output, weights_only=True)
    weights = payload["model_state_dict"]
    assert weights["logits.weight"].dtype == torch.float16
    loaded = load_checkpoint(config.output)
    assert all(
        value.dtype == torch.float32
        for value in loaded.state_dict.values()
        if value.is_floating_point()
    )
    card = loaded.card
    assert card["trained"] is True and card["input_size"] == 160
    assert "research" in card["training_data"]["licence"]
    assert card["training"]["epochs_run"] == 2 and card["training"]["command"] == "test"
    assert 0 <= card["thresholds"]["uncertain"] <= card["thresholds"]["flag"] <= 1
    assert card["calibration"]["temperature"] > 0
    assert set(card["metrics"]["validation"]) >= {"auc", "accuracy", "ece", "brier"}
    assert card["limitations"]
    for kind in ("roc", "reliability"):
        assert plot_path(config.output, kind).is_file()


def test_resume_refuses_other_settings(tiny_dataset: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    saved = {"signature": {**_config(tiny_dataset, tmp_path).resume_signature(), "epochs": 9}}
    torch.save(saved, workdir / "tiny.last.pt")
    with pytest.raises(TrainingError, match="epochs"):
        training.train(
            _config(tiny_dataset, tmp_path, resume=True), progress=False, log=lambda _: None
        )


def test_train_detector_command_reports_the_validation_numbers(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    stdout = io.StringIO()
    call_command(
        "train_detector",
        data=tiny_dataset,
        epochs=1,
        batch_size=4,
        val_fraction=0.5,
        limit=8,
        threads=1,
        output=tmp_path / "cmd.pth",
        workdir=tmp_path / "work",
        no_progress=True,
        stdout=stdout,
    )
    assert "validation AUC" in stdout.getvalue()
    assert load_checkpoint(tmp_path / "cmd.pth").card["trained"] is True
