"""The workbench commands that write or measure checkpoints: make_demo_checkpoint,
benchmark_pipeline, benchmark_video, and the guard both checkpoint writers share."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from detection.ml.card import read_card


def _run(*args: str, **options: Any) -> str:
    stdout = io.StringIO()
    call_command(*args, stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


def test_make_demo_checkpoint_writes_an_untrained_model_whose_scores_vary(
    samples_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "demo.pth"
    output = _run("make_demo_checkpoint", output=target, samples=samples_dir, frames=3)
    card = read_card(target)
    assert card is not None and card.trained is False
    payload = torch.load(target, weights_only=True)
    # The published layout, plus the size the weights see faces at.
    assert set(payload) == {
        "model_state_dict",
        "epoch",
        "optimizer_state_dict",
        "validation_loss",
        "input_size",
    }
    assert payload["input_size"] == card.input_size == 256
    assert len(payload["model_state_dict"]) == 716
    assert "P(fake) on its calibration faces" in output


@pytest.mark.parametrize("command", ["fetch_model", "make_demo_checkpoint"])
def test_checkpoint_commands_never_overwrite_the_shipped_model_by_default(
    command: str, settings: Any
) -> None:
    shipped = Path(settings.BASE_DIR) / "models" / "faceproof-face-resnet-150.pth"
    settings.DEEPFAKE_CHECKPOINT = str(shipped)
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    with pytest.raises(CommandError, match=r"is the shipped model .* --output"):
        _run(command)
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before


def test_benchmark_times_the_reference_pipeline_against_ours_and_checks_their_parity(
    demo_checkpoint: Path, samples_dir: Path
) -> None:
    output = _run(
        "benchmark_pipeline",
        str(samples_dir / "fake_frame_0.jpg"),
        str(samples_dir / "real_frame_1.jpg"),
        checkpoint=demo_checkpoint,
        repeat=1,
    )
    assert "our classifier in onnxruntime" in output
    assert re.search(
        r"^fake_frame_0\.jpg\s+960x540\s+2\s+[\d.]+\s+[\d.]+\s+[\d.]+", output, re.MULTILINE
    )
    assert re.search(r"speed-up: [\d.]+x on the mean, [\d.]+x median per image", output)
    assert re.search(r"largest \|dP\(fake\)\| of the classifiers on the same crop: ", output)
    assert "parity checks passed" in output


def test_video_benchmark_makes_a_clip_and_reports_seconds_of_analysis_per_minute(
    demo_checkpoint: Path,
) -> None:
    output = _run("benchmark_video", checkpoint=demo_checkpoint, seconds=2, height=360, fps=10)
    assert "clip 640x360, 2.0 s" in output
    assert "sampled frames 4," in output
    assert re.search(r"^  decode +[\d.]+ s$", output, re.MULTILINE)
    assert re.search(r"[\d.]+ s of analysis per minute of 360p video", output)
