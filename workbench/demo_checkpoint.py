"""An untrained checkpoint of the published shape whose output still depends on the input.

Seeded random weights alone give a network whose deep activations drift to a near-constant
output. Recalibrating every BatchNorm's statistics on real face crops (train-mode forward
passes with momentum=None, i.e. a plain average over the batches) re-centres and re-scales
each layer for faces, so P(fake) varies from face to face. It is a demo and test fixture:
its scores mean nothing, and its model card says `trained: false`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from detection.ml.card import DEFAULT_INPUT_SIZE, ModelCard
from detection.ml.classifier import new_classifier
from detection.ml.faces import FaceDetector, crop_faces
from detection.ml.images import load_rgb_image

_CALIBRATION_BATCH = 8


def real_face_crops(frames: Iterable[Path], *, min_face_size: int = 40) -> torch.Tensor:
    """Every confidently detected face in `frames`, cropped as the pipeline crops them."""
    detector = FaceDetector(
        min_face_size=min_face_size,
        probability_threshold=0.95,
        max_side=1024,
        device=torch.device("cpu"),
    )
    crops = []
    for frame in frames:
        image = load_rgb_image(frame)
        crops.append(crop_faces(image, [face.box for face in detector.detect(image)]))
    return torch.cat(crops) if crops else torch.empty((0, 3, 160, 160))


def demo_state_dict(face_crops: torch.Tensor, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights from `seed`, BatchNorm statistics measured on (N, 3, 160, 160) 0-255 crops."""
    if len(face_crops) < 2:
        raise ValueError("BatchNorm recalibration needs at least two face crops")
    torch.manual_seed(seed)
    model = new_classifier()
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    for batch_norm in batch_norms:
        batch_norm.reset_running_stats()
        batch_norm.momentum = None
    model.train()
    # Dropout stays off: in train mode it would rescale the features last_bn measures.
    model.dropout.eval()
    size = (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    inputs = F.interpolate(face_crops, size=size, mode="bilinear", align_corners=False) / 255.0
    with torch.no_grad():
        for start in range(0, len(inputs), _CALIBRATION_BATCH):
            batch = inputs[start : start + _CALIBRATION_BATCH]
            if len(batch) > 1:  # BatchNorm1d cannot take statistics of a single sample
                model(batch)
    for batch_norm in batch_norms:
        batch_norm.momentum = 0.1  # the architecture's default, as in the published file
    return model.eval().state_dict()


def demo_model_card(*, crop_count: int, seed: int, source: str) -> ModelCard:
    return ModelCard(
        name=f"demo-untrained-inception-resnet-v1-seed{seed}",
        trained=False,
        input_size=DEFAULT_INPUT_SIZE,
        training_data={
            "dataset": (
                f"none: seeded random weights (seed {seed}); BatchNorm statistics recalibrated "
                f"on {crop_count} real face crops from {source}. Scores are meaningless."
            )
        },
    )
