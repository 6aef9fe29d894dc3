"""The whole pipeline: every face scored and explained; no face is a result; no Django."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detection.ml.card import Thresholds, read_card, write_card
from detection.ml.faces import crop_faces, model_box
from detection.ml.images import UnreadableImageError, load_rgb_image
from detection.ml.pipeline import (
    Analyzer,
    PipelineConfig,
    get_analyzer,
    verdict_for,
)

ML_PACKAGE = Path(__file__).resolve().parents[1] / "ml"
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_two_faces_found_in_fake_frame_0(analyzer: Analyzer, samples_dir: Path) -> None:
    result = analyzer.analyze(samples_dir / "fake_frame_0.jpg")
    assert result.status == "ok"
    assert (result.width, result.height) == (960, 540)
    assert [face.index for face in result.faces] == [1, 2]
    probabilities = [face.fake_probability for face in result.faces]
    assert result.fake_probability == max(probabilities)
    assert result.verdict == verdict_for(max(probabilities), result.model)
    for face in result.faces:
        assert 0 <= face.fake_probability <= 1
        assert 0.95 <= face.detection_probability <= 1
        assert face.crop.size == face.heatmap.size == (160, 160)
        assert len(face.landmarks) == 5
    assert result.overlay.size == (960, 540)
    assert set(result.timings_ms) == {"decode", "detect", "classify", "explain", "render", "total"}
    assert result.model.trained is False


def test_bytes_paths_and_images_give_the_same_result(analyzer: Analyzer, samples_dir: Path) -> None:
    path = samples_dir / "real_frame_1.jpg"
    results = [
        analyzer.analyze(source)
        for source in (path, str(path), path.read_bytes(), Image.open(path))
    ]
    assert len({tuple(face.box for face in result.faces) for result in results}) == 1
    assert len({result.fake_probability for result in results}) == 1


def test_photo_without_a_face_is_a_no_face_result(analyzer: Analyzer) -> None:
    noise = Image.effect_noise((800, 600), 50).convert("RGB")
    result = analyzer.analyze(noise)
    assert result.status == "no_face"
    assert result.verdict is None and result.fake_probability is None
    assert result.faces == []
    assert result.overlay.size == (800, 600)


def test_tiny_image_is_a_no_face_result(analyzer: Analyzer) -> None:
    result = analyzer.analyze(Image.new("RGB", (20, 20), "white"))
    assert result.status == "no_face"


def test_sixteen_bit_grayscale_photo_still_shows_its_faces(
    analyzer: Analyzer, sample_image: Callable[[str], Image.Image]
) -> None:
    gray = np.asarray(sample_image("fake_frame_0").convert("L"), dtype=np.uint16) * 257
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "PNG")
    result = analyzer.analyze(buffer.getvalue())
    assert result.status == "ok" and len(result.faces) == 2


def test_unreadable_image_raises_a_clear_error(analyzer: Analyzer) -> None:
    with pytest.raises(UnreadableImageError):
        analyzer.analyze(b"GIF89a but not really")


@pytest.mark.parametrize(
    ("probability", "verdict"),
    [(0.99, "fake"), (0.5, "fake"), (0.4999, "uncertain"), (0.3, "uncertain"), (0.29, "real")],
)
def test_verdicts_follow_the_thresholds(
    analyzer: Analyzer, probability: float, verdict: str
) -> None:
    assert verdict_for(probability, analyzer.model) == verdict


def test_model_card_thresholds_override_the_configured_ones(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "strict.pth"
    checkpoint.symlink_to(demo_checkpoint)
    card = read_card(demo_checkpoint)
    assert card is not None
    strict = Thresholds(flag=0.9, uncertain=0.7)
    write_card(checkpoint, dataclasses.replace(card, thresholds=strict))
    config = PipelineConfig(checkpoint=checkpoint, flag_threshold=0.5, uncertain_threshold=0.3)
    model = Analyzer(config).model
    assert (model.flag_threshold, model.uncertain_threshold) == (0.9, 0.7)
    assert [verdict_for(p, model) for p in (0.95, 0.8, 0.6)] == ["fake", "uncertain", "real"]


def test_a_card_that_cuts_the_top_of_the_face_box_is_what_the_model_sees(
    analyzer: Analyzer, cut_analyzer: Analyzer, samples_dir: Path
) -> None:
    frame = samples_dir / "fake_frame_0.jpg"
    whole = analyzer.analyze(frame)
    cut = cut_analyzer.analyze(frame)

    # The faces are found and boxed as before; the crop scored and explained is the box
    # without its top fifth, so the scores differ.
    assert [face.box for face in cut.faces] == [face.box for face in whole.faces]
    # The quality check measures the whole box, as its thresholds were set: the enlarged cut
    # crop measures softer and would turn sharp faces away as blurry.
    assert [face.quality for face in cut.faces] == [face.quality for face in whole.faces]
    image = load_rgb_image(frame)
    detected = analyzer.detector.detect(image)
    expected = crop_faces(image, [model_box(face.box, 0.2) for face in detected]).numpy()
    for face, crop in zip(cut.faces, expected, strict=True):
        shown = np.asarray(face.crop).astype(np.float32)
        assert np.abs(shown - crop.transpose(1, 2, 0)).max() <= 0.5
        assert face.heatmap.size == face.crop.size == (160, 160)
    scores = [face.fake_probability for face in whole.faces]
    assert [face.fake_probability for face in cut.faces] != pytest.approx(scores)


def test_analyzer_is_loaded_once_per_configuration(
    analyzer: Analyzer, demo_checkpoint: Path
) -> None:
    assert get_analyzer(PipelineConfig(checkpoint=demo_checkpoint)) is analyzer


def test_configuration_rejects_inconsistent_thresholds(demo_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="uncertain <= flag"):
        PipelineConfig(checkpoint=demo_checkpoint, flag_threshold=0.2, uncertain_threshold=0.4)


def test_package_and_config_import_without_torch() -> None:
    # `import detection.tasks` must stay light; the models load in the worker, lazily.
    code = (
        "import sys, detection.ml, detection.ml.config, detection.pipeline_config; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
