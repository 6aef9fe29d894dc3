"""A FaceResNet checkpoint (dlib's face network with a real/fake logit) served like any other."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detection.ml.card import FACE_RESNET, INCEPTION_RESNET_V1, ModelCard, write_card
from detection.ml.classifier import (
    CheckpointError,
    FaceClassifier,
    load_checkpoint,
    save_checkpoint,
)
from detection.ml.face_resnet import FaceResNet, zero_padded_sum
from detection.ml.gradcam import grad_cam_maps
from detection.ml.pipeline import Analyzer, PipelineConfig
from detection.ml.runtime import OnnxOptions

CPU = torch.device("cpu")
CARD = ModelCard(name="face resnet, untrained", trained=False, network=FACE_RESNET, input_size=150)


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = FaceResNet()
    torch.nn.init.normal_(model.logit.weight, std=0.05)
    return model.state_dict()


@pytest.fixture(scope="module")
def checkpoint(weights: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("face_resnet") / "face-resnet.pth"
    save_checkpoint(path, weights, CARD)
    return path


def test_the_shortcut_is_zero_padded_where_the_unit_widens_or_its_map_is_larger() -> None:
    shortcut = torch.ones((1, 2, 4, 4))
    residual = torch.full((1, 3, 3, 3), 10.0)
    summed = zero_padded_sum(shortcut, residual)
    assert summed.shape == (1, 3, 4, 4)
    assert summed[0, :2, :3, :3].eq(11).all() and summed[0, 2, :3, :3].eq(10).all()
    assert summed[0, :2, 3, :].eq(1).all() and summed[0, 2, 3, :].eq(0).all()


def test_an_image_is_scored_and_explained_on_a_four_by_four_map(checkpoint: Path) -> None:
    analyzer = Analyzer(PipelineConfig(checkpoint=checkpoint))
    assert analyzer.model.network == FACE_RESNET
    assert analyzer.model.details()["network"] == FACE_RESNET
    crops = torch.rand((2, 3, 160, 160)) * 255
    scored = analyzer.classifier.classify(crops)
    assert scored.activations.shape == (2, 256, 4, 4)
    assert ((scored.probabilities > 0) & (scored.probabilities < 1)).all()
    assert analyzer.classifier.cam_gradient.shape == (256, 4, 4)


def test_a_frame_goes_through_the_whole_pipeline(checkpoint: Path, samples_dir: Path) -> None:
    result = Analyzer(PipelineConfig(checkpoint=checkpoint)).analyze(
        samples_dir / "fake_frame_0.jpg"
    )
    assert len(result.faces) == 2
    for face in result.faces:
        assert 0 < face.fake_probability < 1
        assert face.heatmap.size == face.crop.size == (160, 160)
    scores = [face.fake_probability for face in result.faces]
    assert scores[0] != pytest.approx(scores[1])


def test_onnx_runtime_scores_and_explains_as_pytorch_does(
    weights: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    crops = torch.rand((3, 3, 160, 160)) * 255
    expected = FaceClassifier(weights, network=FACE_RESNET, input_size=150, device=CPU)
    onnx = FaceClassifier(
        weights,
        network=FACE_RESNET,
        input_size=150,
        device=CPU,
        onnx=OnnxOptions(graph_path=tmp_path / "face-resnet.onnx", num_threads=2),
    )
    ours, theirs = onnx.classify(crops), expected.classify(crops)
    np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-5)
    np.testing.assert_allclose(
        grad_cam_maps(ours.activations, onnx.cam_gradient, 160),
        grad_cam_maps(theirs.activations, expected.cam_gradient, 160),
        atol=1e-3,
    )


def test_weights_parted_from_their_card_are_still_read_as_face_resnet(
    checkpoint: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.pth"
    shutil.copyfile(checkpoint, copy)  # the card stays behind
    loaded = load_checkpoint(copy)
    assert loaded.card is None and (loaded.network, loaded.input_size) == (FACE_RESNET, 150)


def test_a_card_that_names_another_network_is_refused(
    checkpoint: Path, demo_checkpoint: Path, tmp_path: Path
) -> None:
    face_resnet = tmp_path / "face-resnet.pth"
    shutil.copyfile(checkpoint, face_resnet)
    write_card(face_resnet, dataclasses.replace(CARD, network=INCEPTION_RESNET_V1))
    with pytest.raises(CheckpointError, match="holds face_resnet weights but its model card says"):
        load_checkpoint(face_resnet)
    inception = tmp_path / "inception.pth"
    shutil.copyfile(demo_checkpoint, inception)
    write_card(inception, dataclasses.replace(CARD, input_size=256))
    with pytest.raises(CheckpointError, match="holds inception_resnet_v1 weights"):
        load_checkpoint(inception)


def test_weights_of_the_wrong_shape_are_named(tmp_path: Path) -> None:
    model = FaceResNet()
    model.logit = torch.nn.Linear(128, 1)
    save_checkpoint(tmp_path / "wrong.pth", model.state_dict(), CARD)
    with pytest.raises(CheckpointError, match=r"does not fit the face_resnet network.*logit"):
        load_checkpoint(tmp_path / "wrong.pth")


def test_a_card_contradicting_the_network_it_is_saved_with_is_a_programming_error(
    weights: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="contradicts the card's face_resnet"):
        save_checkpoint(tmp_path / "m.pth", weights, CARD, network=INCEPTION_RESNET_V1)
