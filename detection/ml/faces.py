"""Face detection with facenet-pytorch's MTCNN, cropped the way the seed crops faces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import extract_face
from PIL import Image

CROP_SIZE = 160
# MTCNN's P-Net looks at 12-pixel windows: a smaller minimum face would make it upsample.
_PNET_WINDOW = 12


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original-image pixels
    probability: float
    landmarks: list[tuple[float, float]]


class FaceDetector:
    """Finds every face; large images are searched on a downscaled copy.

    Faces in large photos are large, so detecting on a copy whose long side is at most
    `max_side` loses nothing, and the boxes are mapped back so that crops come from the
    original pixels exactly as the seed cuts them.
    """

    def __init__(
        self,
        *,
        min_face_size: int,
        probability_threshold: float,
        max_side: int,
        device: torch.device,
    ) -> None:
        self.min_face_size = min_face_size
        self.probability_threshold = probability_threshold
        self.max_side = max_side
        self.device = device
        self._mtcnn = MTCNN(
            image_size=CROP_SIZE,
            margin=0,
            post_process=False,
            keep_all=True,
            select_largest=False,
            device=device,
        ).eval()

    def detect(self, image: Image.Image) -> list[DetectedFace]:
        """Faces at or above the probability threshold, most probable first."""
        reduction = max(1, math.ceil(max(image.size) / self.max_side))
        searched = image.reduce(reduction) if reduction > 1 else image
        scale_x = image.width / searched.width
        scale_y = image.height / searched.height
        min_size = max(_PNET_WINDOW, round(self.min_face_size / reduction))
        if min(searched.size) < min_size:
            # MTCNN builds an empty image pyramid here and fails; there is no face to find.
            return []
        self._mtcnn.min_face_size = min_size
        boxes, probabilities, points = self._mtcnn.detect(searched, landmarks=True)
        if boxes is None:
            return []
        faces = []
        for box, probability, face_points in zip(boxes, probabilities, points, strict=True):
            if probability < self.probability_threshold:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            faces.append(
                DetectedFace(
                    box=(x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y),
                    probability=float(probability),
                    landmarks=[(float(x) * scale_x, float(y) * scale_y) for x, y in face_points],
                )
            )
        faces.sort(key=lambda face: face.probability, reverse=True)
        return faces


def crop_faces(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> torch.Tensor:
    """The seed's crops: (N, 3, 160, 160) float32 with values 0-255, no normalisation.

    facenet's `extract_face` truncates the box to whole pixels inside the image and resizes
    bilinearly with Pillow; using it keeps our crops identical to the seed's for the same box.
    """
    if not boxes:
        return torch.empty((0, 3, CROP_SIZE, CROP_SIZE), dtype=torch.float32)
    return torch.stack(
        [extract_face(image, np.asarray(box), image_size=CROP_SIZE, margin=0) for box in boxes]
    )


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    """MTCNN boxes may reach past the frame; reported boxes stay inside the image."""
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )
