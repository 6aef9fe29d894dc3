"""A training run meant for a lent GPU, run here on the CPU with tiny face sets: the pack
that carries the faces there, the run itself, and the pieces it sends back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from detection.ml.classifier import load_checkpoint
from workbench.training.accelerated import MANIFEST, PIECE_BYTES, main, planned_steps
from workbench.training.data import TrainingError
from workbench.training.packed import read_pack, write_pack
from workbench.training.run import TrainingData, load_training_data, recipe_units


@pytest.fixture(scope="module")
def training_data(face_sets: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
    return load_training_data(
        face_sets / "dfdc",
        face_sets / "utkface",
        cache_root=tmp_path_factory.mktemp("cache"),
        progress=False,
    )


@pytest.fixture(scope="module")
def pack(training_data: TrainingData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pack")
    write_pack(training_data, "mix", folder, side=128, quality=90)
    return folder


def test_pack_holds_the_recipes_training_faces_only_and_unpacks_close_to_them(
    training_data: TrainingData, pack: Path
) -> None:
    packed = read_pack(pack)

    units = recipe_units(training_data, "mix")
    trained_on = sorted({face for unit in units for _, face in unit})
    held_out = set(training_data.dfdc_validation) | set(training_data.photos.calibration)
    assert held_out and not held_out & set(trained_on)
    assert len(packed.cache) == len(trained_on)
    assert (packed.recipe, packed.side) == ("mix", 128)
    # The same units in the same order, each face renumbered to its place in the pack.
    assert [[kind for kind, _ in unit] for unit in packed.units] == [
        [kind for kind, _ in unit] for unit in units
    ]
    for unit, packed_unit in zip(units, packed.units, strict=True):
        for (_, face), (_, packed_face) in zip(unit, packed_unit, strict=True):
            original = np.asarray(training_data.cache.context[face], dtype=np.float32)
            assert packed.cache.context[packed_face].shape == original.shape
            assert np.abs(packed.cache.context[packed_face] - original).mean() < 8
            assert np.array_equal(
                packed.cache.landmarks[packed_face], training_data.cache.landmarks[face]
            )


def test_pack_refuses_a_size_it_cannot_scale_back_and_a_missing_pack_says_how_to_make_one(
    training_data: TrainingData, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="side must be"):
        write_pack(training_data, "mix", tmp_path / "pack", side=320, quality=85)
    assert not (tmp_path / "pack").exists()
    with pytest.raises(TrainingError, match="make gpu-pack"):
        read_pack(tmp_path / "pack")


def test_run_sends_back_fp16_pieces_that_make_a_loadable_checkpoint(
    pack: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    main(
        [
            "--pack", str(pack), "--out", str(out), "--device", "cpu", "--steps", "12",
            "--batch-size", "8", "--input-size", "96", "--warmup-steps", "4", "--workers", "1",
        ]
    )  # fmt: skip

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["final"] and manifest["recipe"] == "mix"
    assert manifest["planned_steps"] == manifest["steps"] == 12
    assert manifest["images_seen"] == 8 * 12
    assert all((out / name).stat().st_size <= PIECE_BYTES for name in manifest["pieces"])
    assert len(manifest["pieces"]) > 1  # 47 MB of fp16 weights do not fit one piece

    checkpoint = tmp_path / "gpu.pth"
    call_command("accelerated_training", "import", pieces=out, output=checkpoint)
    loaded = load_checkpoint(checkpoint)
    assert loaded.card is None  # a raw run: to fine-tune and calibrate before serving
    assert loaded.input_size == 96  # the run's size, not the published model's 256
    crops = torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8)
    from detection.ml.classifier import build_classifier, model_input

    logits = build_classifier(loaded.state_dict)(model_input(crops, input_size=96))
    assert torch.isfinite(logits).all()


def test_the_time_budget_plans_the_steps_and_refuses_one_that_ends_inside_the_warm_up() -> None:
    # 30 steps done at 0.5 s each, 600 s left: 1,200 steps more.
    assert planned_steps(30, 0.5, 600, warmup=300, batch_size=256) == 1230
    with pytest.raises(TrainingError, match="not past the 300-step warm-up"):
        planned_steps(30, 0.5, 100, warmup=300, batch_size=256)


def test_import_refuses_pieces_that_do_not_add_up(pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CommandError, match=r"no run\.json"):
        call_command("accelerated_training", "import", pieces=out, output=tmp_path / "x.pth")

    (out / "weights.part0").write_bytes(b"half of something")
    manifest = {"pieces": ["weights.part0"], "sha256": "0" * 64, "final": True}
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="do not add up"):
        call_command("accelerated_training", "import", pieces=out, output=tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()
