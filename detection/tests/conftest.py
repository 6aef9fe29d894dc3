"""Fixtures for the analysis pipeline: sample frames, a demo checkpoint built once, analyzers.

torch loads inside the fixtures, not at import, so test modules that never touch the
pipeline collect quickly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

if TYPE_CHECKING:
    import torch

    from detection.ml.pipeline import Analyzer

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = Path(os.environ.get("SAMPLES_DIR", REPO_ROOT.parent / "shared" / "data" / "samples"))
# Four real frames give enough face crops to recalibrate BatchNorm in about a second.
_CALIBRATION_FRAMES = [f"real_frame_{index}.jpg" for index in range(4)]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES_DIR.is_dir():
        pytest.fail(f"sample frames not found at {SAMPLES_DIR} (set SAMPLES_DIR)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def sample_image(samples_dir: Path) -> Callable[[str], Image.Image]:
    """Open a sample frame as RGB by name, e.g. sample_image("fake_frame_0")."""

    def open_sample(name: str) -> Image.Image:
        return Image.open(samples_dir / f"{name}.jpg").convert("RGB")

    return open_sample


@pytest.fixture(scope="session")
def calibration_crops(samples_dir: Path) -> torch.Tensor:
    from detection.ml.demo_checkpoint import real_face_crops

    return real_face_crops([samples_dir / name for name in _CALIBRATION_FRAMES])


@pytest.fixture(scope="session")
def demo_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, calibration_crops: torch.Tensor
) -> Path:
    """The untrained demo checkpoint and its model card, written once per test session."""
    from detection.ml.demo_checkpoint import demo_model_card, demo_state_dict, write_checkpoint

    path = tmp_path_factory.mktemp("models") / "demo.pth"
    card = demo_model_card(crop_count=len(calibration_crops), seed=0, source="test frames")
    write_checkpoint(path, demo_state_dict(calibration_crops, seed=0), card)
    return path


@pytest.fixture(scope="session")
def analyzer(demo_checkpoint: Path) -> Analyzer:
    from detection.ml.pipeline import PipelineConfig, get_analyzer

    return get_analyzer(PipelineConfig(checkpoint=demo_checkpoint))
