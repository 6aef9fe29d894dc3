"""Self-blended images: a pseudo-fake made from one real face and a perturbed copy of itself.

After Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images" (CVPR 2022),
written from the paper. Every face swap pastes a face region into a frame through a soft
mask; what betrays it is the blend boundary and the mismatch of colour, sharpness and
geometry across it. Blending a face with a slightly altered copy of itself produces exactly
those traces with no identity change to learn instead, which is why a detector trained on
them generalises across manipulation methods.

Steps (one real face in, one pseudo-fake out):
1. fit a mean 68-point face shape to MTCNN's five landmarks (similarity transform);
2. a mask from that shape: the full-face hull, the inner-face hull, or an ellipse;
3. deform the mask elastically and soften it with a blur of random size, times a blend
   ratio drawn from {0.25, 0.5, 0.75, 1, 1, 1};
4. perturb the face or its surroundings (colour and brightness, blur or sharpening,
   down-and-up scaling, then a small translation and rescaling);
5. blend: mask x source + (1 - mask) x target.
"""

from __future__ import annotations

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
MASK_KINDS = ("full", "inner", "ellipse")

# The mean 68-point face shape (iBUG 300-W point order, the dlib/OpenFace template) in a
# unit square: jaw 0-16, eyebrows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
MEAN_SHAPE = np.array(
    [
        [0.0792, 0.3392], [0.0829, 0.4570], [0.0968, 0.5756], [0.1221, 0.6919],
        [0.1687, 0.8003], [0.2398, 0.8957], [0.3257, 0.9771], [0.4223, 1.0433],
        [0.5318, 1.0608], [0.6413, 1.0398], [0.7381, 0.9723], [0.8244, 0.8896],
        [0.8948, 0.7925], [0.9394, 0.6815], [0.9611, 0.5622], [0.9706, 0.4418],
        [0.9712, 0.3221],
        [0.1638, 0.2492], [0.2178, 0.2043], [0.2913, 0.1924], [0.3675, 0.2036],
        [0.4393, 0.2331], [0.5864, 0.2281], [0.6602, 0.1959], [0.7375, 0.1824],
        [0.8132, 0.1928], [0.8708, 0.2353],
        [0.5153, 0.3186], [0.5162, 0.3962], [0.5171, 0.4738], [0.5182, 0.5532],
        [0.4337, 0.6041], [0.4755, 0.6208], [0.5207, 0.6343], [0.5659, 0.6188],
        [0.6071, 0.6016],
        [0.2524, 0.3311], [0.2987, 0.3026], [0.3557, 0.3030], [0.4037, 0.3387],
        [0.3525, 0.3500], [0.2968, 0.3505], [0.6313, 0.3341], [0.6791, 0.2965],
        [0.7360, 0.2947], [0.7829, 0.3213], [0.7403, 0.3418], [0.6850, 0.3437],
        [0.3532, 0.7462], [0.4146, 0.7191], [0.4777, 0.7068], [0.5227, 0.7171],
        [0.5698, 0.7054], [0.6352, 0.7157], [0.6995, 0.7394], [0.6394, 0.8052],
        [0.5764, 0.8354], [0.5254, 0.8417], [0.4764, 0.8375], [0.4138, 0.8100],
        [0.3801, 0.7500], [0.4780, 0.7451], [0.5234, 0.7489], [0.5711, 0.7433],
        [0.6724, 0.7442], [0.5725, 0.7766], [0.5240, 0.7834], [0.4776, 0.7785],
    ],
    dtype=np.float64,
)  # fmt: skip
# MTCNN's five points on the mean shape: eye centres, nose tip, mouth corners.
_FIVE_POINTS = np.stack(
    [
        MEAN_SHAPE[36:42].mean(axis=0),
        MEAN_SHAPE[42:48].mean(axis=0),
        MEAN_SHAPE[30],
        MEAN_SHAPE[48],
        MEAN_SHAPE[54],
    ]
)
# The inner face: the jaw drawn a fifth of the way towards the nose, brows, eyes, mouth.
_INNER_JAW = slice(2, 15)


def face_shape(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) mean face shape placed on five (5, 2) landmarks by a similarity transform."""
    scale, rotation, translation = _similarity(_FIVE_POINTS, np.asarray(landmarks, np.float64))
    return scale * MEAN_SHAPE @ rotation.T + translation


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares scale, rotation and translation from source to target (Umeyama)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum() / centred_source.var(axis=0).sum())
    return scale, rotation, target_mean - scale * rotation @ source_mean


def face_mask(shape: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """(H, W) float32 mask in {0, 1} of the face region of a placed 68-point shape."""
    height, width = size
    mask = np.zeros((height, width), dtype=np.uint8)
    if kind == "full":
        points = shape
    elif kind == "inner":
        centre = shape[30]
        jaw = centre + 0.8 * (shape[_INNER_JAW] - centre)
        points = np.concatenate([jaw, shape[17:27], shape[36:68]])
    elif kind == "ellipse":
        (cx, cy), (axis_a, axis_b), angle = cv2.fitEllipse(shape[:27].astype(np.float32))
        cv2.ellipse(
            mask,
            (round(cx), round(cy)),
            (round(axis_a / 2), round(axis_b / 2)),
            angle,
            0,
            360,
            1,
            thickness=-1,
        )
        return mask.astype(np.float32)
    else:
        raise ValueError(f"unknown mask kind {kind!r}")
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


def elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask's outline pushed around by a smooth random displacement field."""
    height, width = mask.shape
    side = min(height, width)
    alpha = rng.uniform(0.02, 0.06) * side  # largest push, in pixels
    sigma = rng.uniform(0.06, 0.12) * side  # how smooth the pushing is
    fields = [
        cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), sigma)
        for _ in range(2)
    ]
    fields = [field / (np.abs(field).max() + 1e-6) * alpha for field in fields]
    grid_x, grid_y = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    return cv2.remap(mask, grid_x + fields[0], grid_y + fields[1], cv2.INTER_LINEAR)


def soften(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A blend mask: the hard mask shrunk or grown a little, blurred with a random kernel."""
    side = min(mask.shape)
    grow = int(rng.integers(-side // 25, side // 25 + 1))
    if grow:
        kernel = np.ones((abs(grow) * 2 + 1,) * 2, np.uint8)
        mask = (cv2.dilate if grow > 0 else cv2.erode)(mask, kernel)
    # Blur once and keep only what stayed fully inside, then blur that: the soft edge lies
    # inside the face outline, so the blend never leaks into the background as a hard step.
    inside = cv2.GaussianBlur(mask, (_odd(rng, side // 30, side // 10),) * 2, 0) > 0.99
    softened = cv2.GaussianBlur(
        inside.astype(np.float32), (_odd(rng, side // 30, side // 8),) * 2, 0
    )
    peak = softened.max()
    return softened / peak if peak > 0 else softened


def _odd(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(max(1, low // 2), max(2, high // 2))) * 2 + 1


def perturbed(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same face as another rendering of it might look: colour, sharpness, geometry."""
    image: np.ndarray = face.astype(np.float32)
    # Colour: a shift per RGB channel, then hue, saturation and value.
    image += rng.uniform(-20, 20, 3).astype(np.float32)
    hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(
        np.float32
    )
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1:] += rng.uniform(-20, 20, 2).astype(np.float32)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(
        np.float32
    )
    # Brightness and contrast.
    image = (image - 128) * rng.uniform(0.9, 1.1) + 128 + rng.uniform(-12, 12)
    # Blur or sharpen.
    if rng.random() < 0.5:
        blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
        image = blurred if rng.random() < 0.5 else image + rng.uniform(0.5, 1.5) * (image - blurred)
    # Down-and-up scaling: the detail another resolution would have.
    height, width = face.shape[:2]
    if rng.random() < 0.5:
        scale = rng.uniform(0.4, 0.9)
        small = cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    # A small translation (up to 3 % of the side) and rescaling (0.95-1.05).
    scale = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-0.03, 0.03, 2) * [width, height]
    matrix = np.array(
        [
            [scale, 0, (1 - scale) * width / 2 + shift[0]],
            [0, scale, (1 - scale) * height / 2 + shift[1]],
        ]
    )
    image = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return np.clip(image, 0, 255)


def self_blend(
    face: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 real face and its (5, 2) landmarks → (pseudo-fake, blend mask)."""
    height, width = face.shape[:2]
    shape = face_shape(landmarks)
    mask = face_mask(shape, (height, width), str(rng.choice(MASK_KINDS)))
    mask = soften(elastic(mask, rng), rng) * float(rng.choice(BLEND_RATIOS))
    original = face.astype(np.float32)
    # Either the pasted face or the frame around it may be the altered one.
    if rng.random() < 0.5:
        source, target = perturbed(face, rng), original
    else:
        source, target = original, perturbed(face, rng)
    blended = mask[..., None] * source + (1 - mask[..., None]) * target
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask
