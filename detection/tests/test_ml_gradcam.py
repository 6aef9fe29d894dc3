"""Grad-CAM from the scoring pass: its input-independent gradient, and its pictures.

Equality with the grad-cam package is proved in workbench/tests/test_reference_parity.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detection.ml.classifier import (
    FaceClassifier,
    build_classifier,
    cam_layer,
    load_checkpoint,
)
from detection.ml.render import (
    OVERLAY_MAX_SIDE,
    VERDICT_COLOURS,
    FaceLabel,
    annotated_image,
    heatmap_overlay,
)


@pytest.fixture(scope="module")
def state_dict(demo_checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(demo_checkpoint).state_dict


@pytest.fixture(scope="module")
def classifier(state_dict: dict[str, torch.Tensor]) -> FaceClassifier:
    return FaceClassifier(state_dict, input_size=256, device=torch.device("cpu"))


def test_logit_gradient_at_the_cam_layer_does_not_depend_on_the_face(
    state_dict: dict[str, torch.Tensor],
    classifier: FaceClassifier,
    calibration_crops: torch.Tensor,
) -> None:
    model = build_classifier(state_dict)
    captured: list[torch.Tensor] = []
    handle = cam_layer(model).register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    try:
        logits = model(classifier.model_input(calibration_crops[:2]))
        (gradient,) = torch.autograd.grad(logits.sum(), captured[0])
    finally:
        handle.remove()
    for per_face in gradient:
        np.testing.assert_allclose(per_face.numpy(), classifier.cam_gradient, atol=1e-6)


def test_heatmap_is_drawn_over_the_crop(calibration_crops: torch.Tensor) -> None:
    cam = np.zeros((160, 160), dtype=np.float32)
    cam[:80] = 1.0
    heatmap = heatmap_overlay(calibration_crops[0].numpy(), cam)
    assert heatmap.size == (160, 160) and heatmap.mode == "RGB"
    pixels = np.asarray(heatmap).astype(int)
    hot_red, _, hot_blue = pixels[20, 80]
    cold_red, _, cold_blue = pixels[140, 80]
    assert hot_red > hot_blue and cold_blue > cold_red


def test_overlay_boxes_every_face_in_its_verdict_colour() -> None:
    image = Image.new("RGB", (800, 600), (128, 128, 128))
    labels = [
        FaceLabel(1, (100.0, 300.0, 200.0, 420.0), "fake", 0.91),
        FaceLabel(2, (500.0, 300.0, 600.0, 420.0), "real", 0.05),
    ]
    overlay = annotated_image(image, labels)
    assert overlay.size == image.size
    assert image.getpixel((100, 360)) == (128, 128, 128)  # the original stays untouched
    assert overlay.getpixel((100, 360)) == VERDICT_COLOURS["fake"]
    assert overlay.getpixel((600, 360)) == VERDICT_COLOURS["real"]


def test_overlay_of_a_very_large_photo_is_drawn_on_a_smaller_copy() -> None:
    image = Image.new("RGB", (9000, 6000), (128, 128, 128))
    overlay = annotated_image(image, [FaceLabel(1, (3000.0, 3000.0, 6000.0, 5400.0), "fake", 0.9)])
    assert max(overlay.size) <= OVERLAY_MAX_SIDE
    scale = overlay.width / image.width
    assert overlay.height == pytest.approx(image.height * scale, abs=1)
    assert overlay.getpixel((round(3000 * scale), round(4200 * scale))) == VERDICT_COLOURS["fake"]
    assert overlay.getpixel((round(4500 * scale), round(4200 * scale))) == (128, 128, 128)
