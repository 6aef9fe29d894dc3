"""What happens to a face between a camera and the service, applied to real and fake alike.

Each training face is cut from its context crop with a jittered box (MTCNN's boxes vary
from photo to photo), then goes through a photo's life in order: mirroring, colour edits,
a platform's downscaling, blur, and JPEG re-compression last, as it is the last thing done
to an upload. Both classes get the same treatment, so none of it can tell them apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from detection.ml.faces import CROP_SIZE
from workbench.training.crops import model_region

BOX_SCALE = (0.9, 1.1)  # the crop's side relative to the detected box
BOX_SHIFT = 0.06  # largest shift of the box centre, as a fraction of its side
SMALLEST_FACE = 80  # pixels: faces are shrunk down to about this size and back
JPEG_QUALITY = (40, 100)


def jittered_crop(context: np.ndarray, rng: np.random.Generator, *, top_cut: float) -> np.ndarray:
    """(200, 200, 3) context crop → (160, 160, 3) face cut with a slightly different box
    than the model's crop (`crops.model_crop`)."""
    x1, y1, x2, y2 = model_region(top_cut)
    base = x2 - x1  # the region is square: the context crop's box is
    side = base * rng.uniform(*BOX_SCALE, size=2)  # width and height vary a little apart
    centre = np.array([x1 + x2, y1 + y2]) / 2 + rng.uniform(-BOX_SHIFT, BOX_SHIFT, size=2) * base
    scale = CROP_SIZE / side
    corner = centre - side / 2
    matrix = np.array([[scale[0], 0, -corner[0] * scale[0]], [0, scale[1], -corner[1] * scale[1]]])
    return cv2.warpAffine(
        context,
        matrix,
        (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )


def photo_damage(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 → the same face as an upload might have left it."""
    image: np.ndarray = face
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = _colour_jitter(image, rng)
    if rng.random() < 0.3:
        height, width = image.shape[:2]
        side = rng.uniform(SMALLEST_FACE, width)
        small = (max(8, round(side)), max(8, round(side * height / width)))
        image = cv2.resize(
            cv2.resize(image, small, interpolation=cv2.INTER_AREA),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        )
    if rng.random() < 0.15:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.6))
    if rng.random() < 0.7:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        # OpenCV encodes BGR; flipping keeps JPEG's chroma weights on the right channels.
        _, encoded = cv2.imencode(
            ".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        assert decoded is not None, "OpenCV decodes what it has just encoded"
        image = decoded[..., ::-1]
    return np.ascontiguousarray(image)


def _colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation each changed by up to 20 %."""
    values = image.astype(np.float32)
    gray = values @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    saturation = rng.uniform(0.8, 1.2)
    values = gray[..., None] + saturation * (values - gray[..., None])
    contrast = rng.uniform(0.8, 1.2)
    values = (values - gray.mean()) * contrast + gray.mean()
    values *= rng.uniform(0.8, 1.2)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
