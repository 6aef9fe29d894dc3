"""Pictures for people: heatmaps over face crops and the annotated full image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Red for likely manipulated, amber for uncertain; neither "no manipulation found" nor a
# face too poor to judge is a reassurance, so neither is green.
VERDICT_COLOURS = {
    "fake": (220, 38, 38),
    "uncertain": (217, 119, 6),
    "real": (71, 85, 105),
    "inconclusive": (148, 163, 184),
}
# The overlay is for looking at; the original image is stored and served apart. A photo
# longer than this is drawn on a copy reduced by a whole factor (so 2,049 to 4,096 long).
OVERLAY_MAX_SIDE = 4096
_HEATMAP_WEIGHT = 0.5  # as pytorch_grad_cam's show_cam_on_image: half heatmap, half photo


@dataclass(frozen=True)
class FaceLabel:
    index: int
    box: tuple[float, float, float, float]
    verdict: str  # the face's own: fake, uncertain, real, or inconclusive (too poor to judge)
    fake_probability: float

    @property
    def text(self) -> str:
        if self.verdict == "inconclusive":
            return f"#{self.index} low quality"
        return f"#{self.index} P(fake) {100 * self.fake_probability:.1f}%"


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map (blue → cyan → yellow → red) for values in [0, 1], as uint8 RGB."""
    scaled = 4.0 * np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])  # red, green, blue peaks
    rgb = np.clip(1.5 - np.abs(scaled - centres), 0.0, 1.0)
    return np.rint(255 * rgb).astype(np.uint8)


def heatmap_overlay(crop: np.ndarray, cam: np.ndarray) -> Image.Image:
    """A (3, H, W) 0-255 crop with an (H, W) Grad-CAM map in [0, 1] laid over it."""
    photo = np.clip(crop.transpose(1, 2, 0), 0, 255) / 255.0
    blended = (1 - _HEATMAP_WEIGHT) * (jet(cam) / 255.0) + _HEATMAP_WEIGHT * photo
    blended = blended / max(float(blended.max()), 1e-7)
    return Image.fromarray(np.rint(255 * blended).astype(np.uint8))


def crop_image(crop: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(crop.transpose(1, 2, 0)), 0, 255).astype(np.uint8))


def annotated_image(image: Image.Image, faces: Sequence[FaceLabel]) -> Image.Image:
    """The image, at most OVERLAY_MAX_SIDE long, with every face boxed and labelled
    in its verdict's colour; boxes are in the image's pixels."""
    factor = math.ceil(max(image.size) / OVERLAY_MAX_SIDE)
    # reduce() makes the smaller canvas straight from the original, never a full-size copy.
    canvas = image.reduce(factor) if factor > 1 else image.copy()
    scale_x, scale_y = canvas.width / image.width, canvas.height / image.height
    draw = ImageDraw.Draw(canvas)
    long_side = max(canvas.size)
    line_width = max(2, round(long_side / 400))
    font = ImageFont.load_default(size=max(12, round(long_side / 60)))
    for face in faces:
        colour = VERDICT_COLOURS[face.verdict]
        x1, y1, x2, y2 = (
            face.box[0] * scale_x,
            face.box[1] * scale_y,
            face.box[2] * scale_x,
            face.box[3] * scale_y,
        )
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line_width)
        label = face.text
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = line_width
        label_height = bottom - top + 2 * pad
        # Above the box when there is room, otherwise just inside its top edge.
        label_top = y1 - label_height if y1 - label_height >= 0 else y1
        draw.rectangle(
            (x1, label_top, x1 + right - left + 2 * pad, label_top + label_height), fill=colour
        )
        draw.text((x1 + pad - left, label_top + pad - top), label, fill=(255, 255, 255), font=font)
    return canvas
