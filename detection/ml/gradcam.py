"""Grad-CAM with eigen smoothing, reproducing pytorch_grad_cam's arithmetic without its hooks.

pytorch_grad_cam (GradCAM, eigen_smooth=True) computes, per image:
channel weights = spatial mean of the gradient; weighted activations = weights x activations;
cam = projection of the centred weighted activations on their first right-singular vector
(numpy SVD); cam = max(cam, 0); min-max scaled; resized bilinearly to the input size; and
min-max scaled again. The same steps follow, with the gradient supplied by the classifier
(it does not depend on the input, see FaceClassifier) instead of a backward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_EPSILON = 1e-7  # pytorch_grad_cam's guard against dividing by a zero maximum


def grad_cam_maps(activations: np.ndarray, gradient: np.ndarray, size: int) -> np.ndarray:
    """Maps in [0, 1], (N, size, size), from (N, C, h, w) activations and their gradient."""
    gradients = np.broadcast_to(gradient, activations.shape)
    weights = gradients.mean(axis=(2, 3))
    weighted = weights[:, :, None, None] * activations
    maps = np.maximum(_first_component_projection(weighted), 0)
    maps = _min_max_scaled(maps)
    resized = F.interpolate(
        torch.from_numpy(maps)[:, None], size=(size, size), mode="bilinear", align_corners=False
    )[:, 0].numpy()
    return _min_max_scaled(np.maximum(resized, 0))


def _first_component_projection(weighted: np.ndarray) -> np.ndarray:
    weighted = np.where(np.isnan(weighted), 0, weighted)
    projections = []
    for maps in weighted:
        rows = maps.reshape(maps.shape[0], -1).T
        centred = rows - rows.mean(axis=0)
        # The package asks for the full SVD (a C x C matrix of right singular vectors, about
        # 90 ms for 1792 channels); the first vector, and the sign LAPACK gives it, which
        # decides which half of the map survives max(cam, 0), come out of the reduced SVD
        # the same (the parity test against the package holds it).
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projections.append((centred @ vt[0, :]).reshape(maps.shape[1:]))
    return np.stack(projections).astype(np.float32)


def _min_max_scaled(maps: np.ndarray) -> np.ndarray:
    shifted = maps - maps.min(axis=(1, 2), keepdims=True)
    return (shifted / (_EPSILON + shifted.max(axis=(1, 2), keepdims=True))).astype(np.float32)
