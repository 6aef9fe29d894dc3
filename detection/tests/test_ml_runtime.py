"""The classifier in ONNX Runtime: the same scores and heatmaps as PyTorch, a cache it can trust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detection.ml import runtime
from detection.ml.classifier import FaceClassifier, load_checkpoint
from detection.ml.gradcam import grad_cam_maps
from detection.ml.pipeline import Analyzer, PipelineConfig
from detection.ml.runtime import OnnxOptions

CPU = torch.device("cpu")


def _classifier(
    state_dict: dict[str, torch.Tensor], graph_path: Path | None = None
) -> FaceClassifier:
    onnx = None if graph_path is None else OnnxOptions(graph_path=graph_path, num_threads=2)
    return FaceClassifier(state_dict, input_size=256, device=CPU, onnx=onnx)


@pytest.fixture(scope="module")
def demo_weights(demo_checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(demo_checkpoint).state_dict


@pytest.fixture(scope="module")
def shared_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphs") / "demo.onnx"


@pytest.mark.parametrize("faces", [1, 3])
def test_onnx_runtime_scores_and_explains_faces_as_pytorch_does(
    demo_weights: dict[str, torch.Tensor],
    shared_graph: Path,
    calibration_crops: torch.Tensor,
    faces: int,
) -> None:
    crops = calibration_crops[:faces]
    expected = _classifier(demo_weights).classify(crops)
    onnx = _classifier(demo_weights, shared_graph)
    ours = onnx.classify(crops)
    np.testing.assert_allclose(ours.probabilities, expected.probabilities, atol=1e-5)
    np.testing.assert_allclose(
        grad_cam_maps(ours.activations, onnx.cam_gradient, 256),
        grad_cam_maps(expected.activations, onnx.cam_gradient, 256),
        atol=1e-3,
    )


def test_the_exported_graph_is_reused_without_exporting_again(
    demo_weights: dict[str, torch.Tensor],
    shared_graph: Path,
    calibration_crops: torch.Tensor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _classifier(demo_weights, shared_graph).classify(calibration_crops[:2])

    def no_export(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("the cached graph should have been used")

    monkeypatch.setattr(runtime, "export_graph", no_export)
    again = _classifier(demo_weights, shared_graph).classify(calibration_crops[:2])
    np.testing.assert_array_equal(again.probabilities, first.probabilities)


def test_an_unreadable_cached_graph_is_exported_again(
    demo_weights: dict[str, torch.Tensor], calibration_crops: torch.Tensor, tmp_path: Path
) -> None:
    graph = tmp_path / "classifier.onnx"
    graph.write_bytes(b"half a file")
    expected = _classifier(demo_weights).classify(calibration_crops[:2])
    ours = _classifier(demo_weights, graph).classify(calibration_crops[:2])
    np.testing.assert_allclose(ours.probabilities, expected.probabilities, atol=1e-5)
    assert graph.stat().st_size > 1_000_000


def test_a_cached_graph_of_other_weights_is_never_used(
    demo_weights: dict[str, torch.Tensor],
    shared_graph: Path,
    calibration_crops: torch.Tensor,
    tmp_path: Path,
) -> None:
    graph = tmp_path / "classifier.onnx"
    graph.write_bytes(shared_graph.read_bytes())  # exported from the demo weights
    other_weights = dict(demo_weights)
    other_weights["logits.bias"] = demo_weights["logits.bias"] + 1.5
    expected = _classifier(other_weights).classify(calibration_crops[:2])
    ours = _classifier(other_weights, graph).classify(calibration_crops[:2])
    np.testing.assert_allclose(ours.probabilities, expected.probabilities, atol=1e-5)
    assert graph.read_bytes() != shared_graph.read_bytes()


def test_the_pipeline_finds_the_same_faces_and_scores_with_either_runtime(
    analyzer: Analyzer, demo_checkpoint: Path, samples_dir: Path, model_cache: Path
) -> None:
    image = (samples_dir / "fake_frame_0.jpg").read_bytes()
    config = PipelineConfig(
        checkpoint=demo_checkpoint, runtime="onnxruntime", model_cache_dir=model_cache
    )
    expected = analyzer.analyze(image)
    ours = Analyzer(config).analyze(image)
    assert len(ours.faces) == 2
    assert [face.box for face in ours.faces] == [face.box for face in expected.faces]
    assert [face.fake_probability for face in ours.faces] == pytest.approx(
        [face.fake_probability for face in expected.faces], abs=1e-5
    )
    assert ours.verdict == expected.verdict


def test_onnx_runtime_is_refused_on_a_gpu(demo_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CPU only"):
        PipelineConfig(
            checkpoint=demo_checkpoint,
            device="cuda",
            runtime="onnxruntime",
            model_cache_dir=tmp_path,
        )


def test_an_unknown_runtime_is_refused(demo_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="runtime must be"):
        PipelineConfig(checkpoint=demo_checkpoint, runtime="tensorrt")
