"""The reference pipeline: the original notebook's per-image path, re-created faithfully.

The benchmark and the parity tests compare the service against it. The original
(descended from aaronespasa/deepfake-detection) keeps MTCNN's most probable face on
the full-resolution image, builds a new pytorch_grad_cam GradCAM object for every image,
back-propagates through the whole network for the heatmap and runs a second forward pass
for the score. Only the weights' source differs: the original constructed the network with
`pretrained="vggface2"` (a download) before loading the checkpoint over every tensor, which
`new_classifier()` plus the same state dict reproduces offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from detection.ml.card import Calibration
from detection.ml.classifier import build_classifier, cam_layer

REFERENCE_INPUT_SIZE = 256


@dataclass(frozen=True)
class ReferenceResult:
    box: tuple[float, float, float, float] | None
    crop: torch.Tensor | None  # (3, 160, 160), values 0-255
    fake_probability: float | None
    cam: np.ndarray | None  # (256, 256) in [0, 1]
    visualization: np.ndarray | None  # the original's heatmap picture, (256, 256, 3) uint8


class ReferencePipeline:
    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.mtcnn = MTCNN(select_largest=False, post_process=False).eval()
        self.model = build_classifier(state_dict)

    def analyze(self, image: Image.Image) -> ReferenceResult:
        # MTCNN.forward, unrolled only to keep the box it selects for the parity report.
        boxes, probabilities, points = self.mtcnn.detect(image, landmarks=True)
        boxes, probabilities, points = self.mtcnn.select_boxes(
            boxes, probabilities, points, image, method=self.mtcnn.selection_method
        )
        face = self.mtcnn.extract(image, boxes, None)
        if face is None:
            # The original raised here ("No face detected"); the benchmark records the miss.
            return ReferenceResult(
                box=None, crop=None, fake_probability=None, cam=None, visualization=None
            )
        crop = face
        face = face.unsqueeze(0)
        face = F.interpolate(
            face,
            size=(REFERENCE_INPUT_SIZE, REFERENCE_INPUT_SIZE),
            mode="bilinear",
            align_corners=False,
        )
        prev_face = face.squeeze(0).permute(1, 2, 0).cpu().detach().int().numpy().astype("uint8")
        face = face.to(torch.float32) / 255.0
        face_to_plot = face.squeeze(0).permute(1, 2, 0).cpu().detach().int().numpy()

        cam = GradCAM(model=self.model, target_layers=[cam_layer(self.model)])
        targets = [ClassifierOutputTarget(0)]
        grayscale_cam = cam(input_tensor=face, targets=targets, eigen_smooth=True)
        grayscale_cam = grayscale_cam[0, :]
        visualization = show_cam_on_image(face_to_plot, grayscale_cam, use_rgb=True)
        face_with_mask = cv2.addWeighted(prev_face, 1, visualization, 0.5, 0)

        with torch.no_grad():
            output = torch.sigmoid(self.model(face).squeeze(0))
        return ReferenceResult(
            box=tuple(float(v) for v in boxes[0]),  # type: ignore[arg-type]
            crop=crop,
            fake_probability=float(output.item()),
            cam=grayscale_cam,
            visualization=face_with_mask,
        )

    def score_crop(
        self,
        crop: torch.Tensor,
        *,
        input_size: int = REFERENCE_INPUT_SIZE,
        calibration: Calibration = Calibration(),  # noqa: B008 (frozen, so shared safely)
        mirror_average: bool = False,
    ) -> float:
        """The reference classifier alone on one (3, 160, 160) crop: resize, /255, sigmoid.

        At the original's own settings unless given a model card's (its input size,
        calibration and mirror averaging), so that parity compares like with like.
        """
        face = F.interpolate(
            crop.unsqueeze(0), size=(input_size, input_size), mode="bilinear", align_corners=False
        )
        batch = torch.cat([face, face.flip(3)]) if mirror_average else face
        with torch.no_grad():
            logit = self.model(batch / 255.0).mean()
        return float(torch.sigmoid(calibration.logits(logit)).item())
