"""Is a face good enough to judge? Size, sharpness, pose and detection certainty.

The classifier scores whatever crop it is given; on a tiny, blurred or sideways face that
score means little (the model card says so). Such faces are still shown, but they must not
decide an image's verdict or a case's priority.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

# The 3x3 Laplacian: its response is large on edges and fine detail, small on blur.
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])


class QualityReason(StrEnum):
    TOO_SMALL = "too_small"
    BLURRY = "blurry"
    PROFILE = "profile"
    LOW_DETECTION = "low_detection"
    # Video only: a face of good quality on too few sampled frames to judge the person.
    TOO_BRIEF = "too_brief"


@dataclass(frozen=True)
class QualityThresholds:
    min_size_px: int = 60  # the box's shorter side in the original image
    min_sharpness: float = 8.0  # variance of the Laplacian of the whole box's gray 160x160 crop
    max_yaw: float = 0.6  # the nose's sideways offset from between the eyes, in eye distances
    min_detection: float = 0.97  # MTCNN's probability that this is a face


@dataclass(frozen=True)
class FaceQuality:
    size_px: int
    sharpness: float
    yaw: float
    detection_probability: float
    reasons: list[QualityReason] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons


def face_quality(
    *,
    box: tuple[float, float, float, float],
    landmarks: list[tuple[float, float]],
    crop: np.ndarray,
    detection_probability: float,
    thresholds: QualityThresholds,
) -> FaceQuality:
    """`crop` is the (3, 160, 160) 0-255 crop of the whole detected box, the crop the
    thresholds were set on, even where the model's card cuts the box (`faces.face_crops`)."""
    size_px = round(min(box[2] - box[0], box[3] - box[1]))
    sharpness = laplacian_variance(crop)
    yaw = sideways_turn(landmarks)
    reasons = [
        reason
        for reason, failed in (
            (QualityReason.TOO_SMALL, size_px < thresholds.min_size_px),
            (QualityReason.BLURRY, sharpness < thresholds.min_sharpness),
            (QualityReason.PROFILE, abs(yaw) > thresholds.max_yaw),
            (QualityReason.LOW_DETECTION, detection_probability < thresholds.min_detection),
        )
        if failed
    ]
    return FaceQuality(size_px, sharpness, yaw, detection_probability, reasons)


def laplacian_variance(crop: np.ndarray) -> float:
    """Sharpness: the variance of the Laplacian of the gray crop (its inner pixels)."""
    gray = np.tensordot(_GRAY_WEIGHTS, np.asarray(crop, dtype=np.float64), axes=1)
    response = sum(
        _LAPLACIAN[dy, dx] * gray[dy : gray.shape[0] - 2 + dy, dx : gray.shape[1] - 2 + dx]
        for dy in range(3)
        for dx in range(3)
        if _LAPLACIAN[dy, dx]
    )
    return float(np.var(response))


def sideways_turn(landmarks: list[tuple[float, float]]) -> float:
    """How far the head is turned: 0 facing the camera, about 1 or more in profile.

    The nose tip's horizontal offset from the point between the eyes, measured in distances
    between the eyes (MTCNN's landmarks: left eye, right eye, nose, mouth corners).
    """
    (left_x, _), (right_x, _), (nose_x, _) = landmarks[:3]
    eye_distance = abs(right_x - left_x)
    if eye_distance < 1e-6:
        return float("inf")
    return float((nose_x - (left_x + right_x) / 2) / eye_distance)
