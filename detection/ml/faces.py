"""Face detection: facenet-pytorch's MTCNN networks in a faster cascade, the reference
pipeline's crops.

The three MTCNN networks, thresholds, pyramid factor and box arithmetic are facenet-pytorch's
(`detect_face`). What differs is where the work is done:

- the image pyramid and the first two stages run on a copy whose long side is at most
  `max_side` (faces in large photos are large); the pyramid levels are resized by Pillow
  from uint8 pixels instead of torch's area interpolation of the whole float image;
- the second stage cuts its 24x24 inputs for all candidates in one `roi_align` call;
- the third stage (O-Net, which sets the final box and landmarks) cuts its 48x48 inputs
  from the ORIGINAL image exactly as facenet does, so the final boxes are as precise as a
  full-resolution search;
- the networks run in channels-last memory, which oneDNN executes 2-3x faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from facenet_pytorch.models.utils.detect_face import (
    bbreg,
    extract_face,
    generateBoundingBox,
    nms_numpy,
    pad,
    rerec,
)
from PIL import Image
from torchvision.ops import nms, roi_align

from detection.ml.card import MAX_CROP_TOP_CUT, is_crop_top_cut

CROP_SIZE = 160
# MTCNN's P-Net looks at 12-pixel windows: a smaller minimum face would make it upsample.
_PNET_WINDOW = 12
# facenet-pytorch's defaults, which the reference pipeline uses.
_STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
_PYRAMID_FACTOR = 0.709


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original-image pixels
    probability: float
    landmarks: list[tuple[float, float]]


class FaceDetector:
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
        self.pnet, self.rnet, self.onet = (
            net.to(device).to(memory_format=torch.channels_last).eval()
            for net in (PNet(), RNet(), ONet())
        )

    def detect(self, image: Image.Image) -> list[DetectedFace]:
        """Faces at or above the probability threshold, most probable first."""
        reduction = max(1, math.ceil(max(image.size) / self.max_side))
        searched = image.reduce(reduction) if reduction > 1 else image
        with torch.inference_mode():
            candidates = self._propose(searched, max(_PNET_WINDOW, self.min_face_size / reduction))
            if len(candidates):
                candidates = self._refine(searched, candidates)
            if not len(candidates):
                return []
            scale = torch.tensor(
                [image.width / searched.width, image.height / searched.height] * 2,
                device=candidates.device,
            )
            candidates[:, :4] = candidates[:, :4] * scale
            boxes, points = self._finish(image, candidates)
        faces = [
            DetectedFace(
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                probability=float(box[4]),
                landmarks=[(float(x), float(y)) for x, y in face_points],
            )
            for box, face_points in zip(boxes, points, strict=True)
            if box[4] >= self.probability_threshold
        ]
        faces.sort(key=lambda face: face.probability, reverse=True)
        return faces

    def _propose(self, image: Image.Image, min_face: float) -> torch.Tensor:
        """Stage 1: P-Net over the image pyramid; squared candidate boxes with scores."""
        width, height = image.size
        scale = _PNET_WINDOW / min_face
        shortest = min(width, height) * scale
        found = []
        level = image
        while shortest >= _PNET_WINDOW:
            # Each level is shrunk from the previous one: far fewer pixels to read than
            # resizing the whole image every time, and the box filter keeps it anti-aliased.
            level = level.resize(
                (int(width * scale + 1), int(height * scale + 1)), Image.Resampling.BOX
            )
            regression, probabilities = self.pnet(_normalised(_tensor(level, self.device)))
            boxes, _ = generateBoundingBox(
                regression, probabilities[:, 1], scale, _STAGE_THRESHOLDS[0]
            )
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
            scale *= _PYRAMID_FACTOR
            shortest *= _PYRAMID_FACTOR
        if not found:
            return torch.empty((0, 5), device=self.device)
        boxes = torch.cat(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        width_, height_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        regressed = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * width_,
                boxes[:, 1] + boxes[:, 6] * height_,
                boxes[:, 2] + boxes[:, 7] * width_,
                boxes[:, 3] + boxes[:, 8] * height_,
                boxes[:, 4],
            ],
            dim=1,
        )
        return rerec(regressed)

    def _refine(self, image: Image.Image, boxes: torch.Tensor) -> torch.Tensor:
        """Stage 2: R-Net on 24x24 cuts of every candidate, all in one batch."""
        # Cutting from normalised pixels equals normalising the cuts: roi_align is linear.
        pixels = _normalised(_tensor(image, self.device))
        y, ey, x, ex = pad(boxes, image.width, image.height)
        keep = (ey > y - 1) & (ex > x - 1)
        regions = torch.tensor(
            np.stack([x - 1, y - 1, ex, ey], axis=1)[keep], dtype=torch.float32, device=self.device
        )
        boxes = boxes[torch.from_numpy(keep).to(self.device)]
        if not len(boxes):
            return boxes
        batch_index = torch.zeros((len(regions), 1), device=self.device)
        # Averaging 2x2 bilinear samples per output pixel approximates facenet's area
        # interpolation well enough for this filtering stage, in one call instead of one per box.
        cuts = roi_align(
            pixels,
            torch.cat([batch_index, regions], dim=1),
            (24, 24),
            sampling_ratio=2,
            aligned=False,
        )
        regression, probabilities = self.rnet(cuts)
        scores = probabilities[:, 1]
        passed = scores > _STAGE_THRESHOLDS[1]
        boxes = torch.cat([boxes[passed, :4], scores[passed, None]], dim=1)
        regression = regression[passed]
        keep_nms = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return rerec(bbreg(boxes[keep_nms], regression[keep_nms]))

    def _finish(self, image: Image.Image, boxes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-Net on 48x48 cuts of the original pixels; final boxes and landmarks."""
        y, ey, x, ex = pad(boxes, image.width, image.height)
        keep = (ey > y - 1) & (ex > x - 1)
        boxes = boxes[torch.from_numpy(keep).to(self.device)]
        if not len(boxes):
            return np.empty((0, 5)), np.empty((0, 5, 2))
        cuts = torch.cat(
            [
                _area_resized(image.crop((left - 1, top - 1, right, bottom)), 48, self.device)
                for left, top, right, bottom in zip(
                    x[keep], y[keep], ex[keep], ey[keep], strict=True
                )
            ]
        )
        regression, landmarks, probabilities = self.onet(_normalised(cuts))
        scores = probabilities[:, 1]
        passed = scores > _STAGE_THRESHOLDS[2]
        boxes = torch.cat([boxes[passed, :4], scores[passed, None]], dim=1)
        landmarks, regression = landmarks[passed], regression[passed]
        box_width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        box_height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack(
            [
                box_width * landmarks[:, :5] + boxes[:, 0:1] - 1,
                box_height * landmarks[:, 5:10] + boxes[:, 1:2] - 1,
            ],
            dim=2,
        )
        final: np.ndarray = bbreg(boxes, regression).cpu().numpy()
        points_array: np.ndarray = points.cpu().numpy()
        if not len(final):
            return final, points_array
        # facenet's final suppression uses the "Min" overlap, which torchvision lacks.
        keep_min = nms_numpy(final[:, :4], final[:, 4], 0.7, "Min")
        return final[keep_min], points_array[keep_min]


def _tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) float32 0-255, a new tensor in channels-last memory.

    Pillow's interleaved RGB, viewed as (1, 3, H, W), already has channels-last strides,
    which `.float()` preserves: one conversion pass and no layout copy.
    """
    pixels = torch.from_numpy(np.array(image)).to(device)
    return pixels.permute(2, 0, 1).unsqueeze(0).float()


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling, in place on a tensor the caller owns."""
    return pixels.sub_(127.5).mul_(0.0078125)


def _area_resized(region: Image.Image, size: int, device: torch.device) -> torch.Tensor:
    return F.interpolate(_tensor(region, device), size=(size, size), mode="area")


def crop_faces(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> torch.Tensor:
    """The reference pipeline's crops: (N, 3, 160, 160) float32 with values 0-255, no normalisation.

    facenet's `extract_face` truncates the box to whole pixels inside the image and resizes
    bilinearly with Pillow; using it keeps our crops identical to the reference pipeline's
    for the same box.
    """
    if not boxes:
        return torch.empty((0, 3, CROP_SIZE, CROP_SIZE), dtype=torch.float32)
    return torch.stack(
        [extract_face(image, np.asarray(box), image_size=CROP_SIZE, margin=0) for box in boxes]
    )


def model_box(
    box: tuple[float, float, float, float], top_cut: float
) -> tuple[float, float, float, float]:
    """The part of a detected face box the model looks at: the box without the top `top_cut`
    of its height, narrowed by half as much on each side so the face keeps its shape.

    A model trained on tight face crops has never seen what lies at the top of MTCNN's box
    (hairline, hair, background): its card says how much to leave out (`crop_top_cut`).
    """
    if not is_crop_top_cut(top_cut):
        raise ValueError(f"top_cut must be from 0 to below {MAX_CROP_TOP_CUT}, not {top_cut}")
    x1, y1, x2, y2 = box
    side_cut = (x2 - x1) * top_cut / 2
    return (x1 + side_cut, y1 + (y2 - y1) * top_cut, x2 - side_cut, y2)


@dataclass(frozen=True)
class FaceCrops:
    """Two 160 px views of the same detected faces, (N, 3, 160, 160) float 0-255 each."""

    model: torch.Tensor  # each box as the model's card says to cut it: scored and explained
    whole: torch.Tensor  # each box whole: what the quality check's thresholds were set on


def face_crops(
    image: Image.Image, boxes: list[tuple[float, float, float, float]], *, top_cut: float
) -> FaceCrops:
    """The model's crops and the whole boxes' crops; one set of crops when nothing is cut.

    The cut crop enlarges the box's lower part, so it measures softer than the whole box: a
    quality check on it would call sharp faces blurry.
    """
    whole = crop_faces(image, boxes)
    if not top_cut:
        return FaceCrops(model=whole, whole=whole)
    model = crop_faces(image, [model_box(box, top_cut) for box in boxes])
    return FaceCrops(model=model, whole=whole)


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
