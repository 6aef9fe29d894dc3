"""Face detection: all faces, in original pixels, whatever the image's size or orientation."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from PIL import Image

from detection.ml.faces import CROP_SIZE, DetectedFace, FaceDetector, crop_faces, model_box
from detection.ml.images import load_rgb_image


def _detector(**overrides: object) -> FaceDetector:
    options: dict = {
        "min_face_size": 40,
        "probability_threshold": 0.95,
        "max_side": 1024,
        "device": torch.device("cpu"),
        **overrides,
    }
    return FaceDetector(**options)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return _detector()


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


def _left_to_right(faces: list[DetectedFace]) -> list[DetectedFace]:
    return sorted(faces, key=lambda face: face.box[0])


def test_two_faces_found_in_fake_frame_0(
    detector: FaceDetector, sample_image: Callable[[str], Image.Image]
) -> None:
    faces = detector.detect(sample_image("fake_frame_0"))
    assert len(faces) == 2
    assert faces[0].probability >= faces[1].probability >= 0.95
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= 960 and 0 <= y1 < y2 <= 540
        assert len(face.landmarks) == 5
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks)


def test_crops_are_160_pixel_squares_of_raw_0_to_255_values(
    detector: FaceDetector, sample_image: Callable[[str], Image.Image]
) -> None:
    image = sample_image("fake_frame_0")
    crops = crop_faces(image, [face.box for face in detector.detect(image)])
    assert crops.shape == (2, 3, CROP_SIZE, CROP_SIZE)
    assert crops.dtype == torch.float32
    assert crops.max() > 1 and crops.min() >= 0 and crops.max() <= 255


def test_a_model_box_leaves_out_the_top_of_the_face_box_and_keeps_its_shape() -> None:
    assert model_box((10, 20, 110, 120), 0.0) == (10, 20, 110, 120)
    # 20 % of the height off the top, 10 % of the width off each side: still a square,
    # still reaching down to the chin.
    assert model_box((10, 20, 110, 120), 0.2) == pytest.approx((20, 40, 100, 120))
    for impossible in (-0.1, 0.5):
        with pytest.raises(ValueError, match="top_cut"):
            model_box((10, 20, 110, 120), impossible)


def test_exif_rotated_photo_gives_boxes_in_the_same_place(
    detector: FaceDetector, sample_image: Callable[[str], Image.Image]
) -> None:
    upright = sample_image("fake_frame_0")
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° counter-clockwise to view"
    buffer = io.BytesIO()
    # Lossless PNG: after exif_transpose the pixels are exactly the upright ones.
    upright.transpose(Image.Transpose.ROTATE_270).save(buffer, "PNG", exif=exif.tobytes())
    rotated = load_rgb_image(buffer.getvalue())
    assert rotated.size == upright.size
    expected = _left_to_right(detector.detect(upright))
    found = _left_to_right(detector.detect(rotated))
    assert len(found) == len(expected) == 2
    for turned, original in zip(found, expected, strict=True):
        assert turned.box == pytest.approx(original.box, abs=1e-3)


def test_image_without_a_face_has_no_detections(detector: FaceDetector) -> None:
    gradient = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    noise = Image.effect_noise((640, 480), 64).convert("RGB")
    assert detector.detect(gradient) == []
    assert detector.detect(noise) == []


def test_tiny_image_has_no_detections(detector: FaceDetector) -> None:
    assert detector.detect(Image.new("RGB", (20, 20), (128, 100, 90))) == []


def test_huge_image_is_searched_downscaled_and_boxed_in_original_pixels(
    detector: FaceDetector, sample_image: Callable[[str], Image.Image]
) -> None:
    frame = sample_image("fake_frame_0")
    scale = 6000 / frame.width
    huge = Image.new("RGB", (6000, 4000), (90, 90, 90))
    huge.paste(frame.resize((6000, round(frame.height * scale)), Image.Resampling.BILINEAR))
    expected = _left_to_right(detector.detect(frame))
    found = _left_to_right(detector.detect(huge))
    assert len(found) == len(expected) == 2
    for big, small in zip(found, expected, strict=True):
        assert 0.8 < _iou(big.box, tuple(value * scale for value in small.box)) <= 1


def test_minimum_face_size_setting_skips_smaller_faces(
    sample_image: Callable[[str], Image.Image],
) -> None:
    # The faces in fake_frame_0 are about 200-250 pixels wide.
    assert _detector(min_face_size=600).detect(sample_image("fake_frame_0")) == []


def test_detection_threshold_setting_drops_less_certain_faces(
    detector: FaceDetector, sample_image: Callable[[str], Image.Image]
) -> None:
    # fake_frame_8 holds a clear face and one MTCNN is less sure of (P ≈ 0.993).
    image = sample_image("fake_frame_8")
    probabilities = sorted(face.probability for face in detector.detect(image))
    assert len(probabilities) == 2 and probabilities[0] < 0.997 < probabilities[1]
    assert len(_detector(probability_threshold=0.997).detect(image)) == 1
