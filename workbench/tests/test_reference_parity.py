"""The service's classifier and Grad-CAM against the reference: the original per-image path
and the grad-cam package, on the same crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from detection.ml.card import Calibration
from detection.ml.classifier import FaceClassifier, build_classifier, cam_layer, load_checkpoint
from detection.ml.gradcam import grad_cam_maps
from workbench.reference_pipeline import ReferencePipeline


def test_cam_equals_the_grad_cam_package_for_the_same_faces(
    demo_checkpoint: Path, calibration_crops: torch.Tensor
) -> None:
    state_dict = load_checkpoint(demo_checkpoint).state_dict
    classifier = FaceClassifier(state_dict, input_size=256, device=torch.device("cpu"))
    crops = calibration_crops[:3]
    ours = grad_cam_maps(classifier.classify(crops).activations, classifier.cam_gradient, size=256)

    model = build_classifier(state_dict)
    package = GradCAM(model=model, target_layers=[cam_layer(model)])
    # The package back-propagates the raw logit (ClassifierOutputTarget(0)), one face at a
    # time as the original did, and normalises each map to [0, 1] itself.
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


def test_batched_classifier_matches_the_reference_on_the_same_crops(
    demo_checkpoint: Path, calibration_crops: torch.Tensor
) -> None:
    demo = load_checkpoint(demo_checkpoint)
    classifier = FaceClassifier(demo.state_dict, input_size=256, device=torch.device("cpu"))
    reference = ReferencePipeline(demo.state_dict)
    ours = classifier.classify(calibration_crops).probabilities
    theirs = [reference.score_crop(crop) for crop in calibration_crops]
    assert np.abs(ours - np.array(theirs)).max() <= 1e-4


def test_reference_scores_at_a_cards_serving_settings_match_ours(
    demo_checkpoint: Path, calibration_crops: torch.Tensor
) -> None:
    """The benchmark's parity at a card's input size, calibration and mirror averaging."""
    demo = load_checkpoint(demo_checkpoint)
    classifier = FaceClassifier(
        demo.state_dict,
        input_size=128,
        calibration=Calibration(temperature=2.5, bias=0.4),
        mirror_average=True,
        device=torch.device("cpu"),
    )
    reference = ReferencePipeline(demo.state_dict)
    ours = classifier.classify(calibration_crops).probabilities
    served = [
        reference.score_crop(
            crop,
            input_size=128,
            calibration=Calibration(temperature=2.5, bias=0.4),
            mirror_average=True,
        )
        for crop in calibration_crops
    ]
    assert np.abs(ours - np.array(served)).max() <= 1e-4
    # The serving settings change the scores: the comparison is not the reference's own.
    at_reference_settings = [reference.score_crop(crop) for crop in calibration_crops]
    assert np.abs(ours - np.array(at_reference_settings)).max() > 1e-3
