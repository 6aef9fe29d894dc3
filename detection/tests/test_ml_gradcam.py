"""Grad-CAM from the scoring pass equals the grad-cam package's, and renders as pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from detection.ml.classifier import (
    FaceClassifier,
    build_classifier,
    cam_layer,
    load_checkpoint,
)
from detection.ml.gradcam import grad_cam_maps
from detection.ml.render import BAND_COLOURS, FaceLabel, annotated_image, heatmap_overlay


@pytest.fixture(scope="module")
def state_dict(demo_checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(demo_checkpoint).state_dict


@pytest.fixture(scope="module")
def classifier(state_dict: dict[str, torch.Tensor]) -> FaceClassifier:
    return FaceClassifier(state_dict, input_size=256, temperature=1.0, device=torch.device("cpu"))


def test_cam_equals_the_grad_cam_package_for_the_same_faces(
    state_dict: dict[str, torch.Tensor],
    classifier: FaceClassifier,
    calibration_crops: torch.Tensor,
) -> None:
    crops = calibration_crops[:3]
    ours = grad_cam_maps(classifier.classify(crops).activations, classifier.cam_gradient, size=256)

    model = build_classifier(state_dict)
    package = GradCAM(model=model, target_layers=[cam_layer(model)])
    # The package back-propagates the raw logit (ClassifierOutputTarget(0)), one face at a
    # time as the seed did, and normalises each map to [0, 1] itself.
    expected = np.stack(
        [
            package(
                input_tensor=classifier.model_input(crop[None]),
                targets=[ClassifierOutputTarget(0)],
                eigen_smooth=True,
            )[0]
            for crop in crops
        ]
    )
    assert ours.shape == expected.shape == (3, 256, 256)
    assert np.abs(ours - expected).max() < 1e-3
    # Not a trivially flat map: the comparison means something.
    assert all(cam.max() == pytest.approx(1, abs=1e-6) and cam.min() == 0 for cam in ours)


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


def test_overlay_boxes_every_face_in_its_band_colour() -> None:
    image = Image.new("RGB", (800, 600), (128, 128, 128))
    labels = [
        FaceLabel(1, (100.0, 300.0, 200.0, 420.0), "fake", 0.91),
        FaceLabel(2, (500.0, 300.0, 600.0, 420.0), "real", 0.05),
    ]
    overlay = annotated_image(image, labels)
    assert overlay.size == image.size
    assert image.getpixel((100, 360)) == (128, 128, 128)  # the original stays untouched
    assert overlay.getpixel((100, 360)) == BAND_COLOURS["fake"]
    assert overlay.getpixel((600, 360)) == BAND_COLOURS["real"]
