"""Faces cut the way the service cuts them, decoded once into a uint8 cache on disk.

The model must learn on what the service shows it, so every face goes through the
service's own detector (MTCNN via `FaceDetector`). The cache keeps more than the service's
160x160 crop: a context crop 1.25 times the face box (200x200, the box is its central
160x160) and the five landmarks in its coordinates. Training can then jitter the box as
MTCNN's boxes vary, and self-blending can draw its masks from the landmarks.

The cache is a folder of numpy arrays (memory-mapped, so 40,000 faces cost no RAM of their
own) filled chunk by chunk: an interrupted preparation continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from detection.ml.faces import CROP_SIZE, FaceDetector, face_crops, model_box
from detection.ml.images import load_rgb_image
from detection.ml.quality import QualityThresholds, face_quality
from workbench.training.data import LabelledFace

# Bump when the preparation below changes, so that a stale cache is never reused.
PREPARATION_VERSION = 2
_FRAMES_FORMAT = 3  # 2: each frame face's quality verdict; 3: judged on the whole box
CONTEXT_SCALE = 1.25
CONTEXT_SIZE = round(CROP_SIZE * CONTEXT_SCALE)  # 200: the service crop is the middle 160
CROP_OFFSET = (CONTEXT_SIZE - CROP_SIZE) // 2
# The crops in the sets are tighter than MTCNN's box; a quarter of the side on every edge
# gives the detector the forehead, chin and background context it expects.
DETECTION_PADDING = 0.25
# A face in a padded crop is 150-220 px wide: skipping the tiny pyramid levels saves time
# without changing what is found at that size.
PREPARATION_MIN_FACE = 80
DETECTION_THRESHOLD = 0.95  # the service's default FACE_DETECTION_THRESHOLD
# A detection that overlaps the known face region this little is a mirrored ghost from the
# reflection padding, not the face.
MIN_FACE_OVERLAP = 0.3
# Where MTCNN puts the eyes, nose and mouth corners in its box (x, y as fractions), for the
# few faces it misses: those are cut around the whole crop with these landmarks.
TYPICAL_LANDMARKS = np.array(
    [[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.78], [0.64, 0.78]], dtype=np.float32
)
_CHUNK = 100


@dataclass
class FaceCache:
    """Context crops (N, 200, 200, 3) uint8, landmarks (N, 5, 2) and MTCNN misses (N,)."""

    folder: Path
    context: np.ndarray
    landmarks: np.ndarray
    missed: np.ndarray

    def __len__(self) -> int:
        return len(self.context)

    def service_crops(self, indices: Sequence[int] | np.ndarray, *, top_cut: float) -> torch.Tensor:
        """(N, 3, 160, 160) uint8: each face as the service crops it for a model that leaves
        out `top_cut` of the box at the top (its card's `crop_top_cut`)."""
        if top_cut == 0:  # the middle of each context crop: one slice of the mapped array
            end = CROP_OFFSET + CROP_SIZE
            crops = self.context[np.asarray(indices), CROP_OFFSET:end, CROP_OFFSET:end]
        else:
            crops = np.stack([model_crop(self.context[index], top_cut) for index in indices])
        return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)


def model_region(top_cut: float) -> tuple[float, float, float, float]:
    """Where the model's crop lies in a context crop: the detected box (the middle 160x160)
    cut as `detection.ml.faces.model_box` cuts it in the service."""
    end = CROP_OFFSET + CROP_SIZE
    return model_box((CROP_OFFSET, CROP_OFFSET, end, end), top_cut)


def model_crop(context: np.ndarray, top_cut: float) -> np.ndarray:
    """(200, 200, 3) context crop → (160, 160, 3): what the service feeds the model."""
    region = Image.fromarray(np.asarray(context)).resize(
        (CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR, box=model_region(top_cut)
    )
    return np.asarray(region)


def prepare_faces(
    faces: Sequence[LabelledFace], *, cache_root: Path, workers: int, progress: bool = True
) -> FaceCache:
    """Every face through the service's detector, cached; a second call only opens the cache."""
    paths = [str(face.path) for face in faces]
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:12]
    folder = cache_root / f"faces-v{PREPARATION_VERSION}-{len(paths)}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "context": ((len(paths), CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8),
        "landmarks": ((len(paths), 5, 2), np.float32),
        "missed": ((len(paths),), np.bool_),
    }
    opened = {
        name: np.lib.format.open_memmap(
            folder / f"{name}.npy",
            mode="r+" if (folder / f"{name}.npy").is_file() else "w+",
            dtype=dtype,
            shape=shape,
        )
        for name, (shape, dtype) in arrays.items()
    }
    progress_file = folder / "prepared.json"
    done = json.loads(progress_file.read_text())["faces"] if progress_file.is_file() else 0
    if done < len(paths):
        bar = tqdm(total=len(paths), initial=done, desc="preparing faces", disable=not progress)
        for start, (context, landmarks, missed) in _prepared_chunks(paths, done, workers):
            stop = start + len(context)
            opened["context"][start:stop] = context
            opened["landmarks"][start:stop] = landmarks
            opened["missed"][start:stop] = missed
            for array in opened.values():
                array.flush()
            progress_file.write_text(json.dumps({"faces": stop}))
            bar.update(len(context))
        bar.close()
    return FaceCache(
        folder,
        np.load(folder / "context.npy", mmap_mode="r"),
        np.load(folder / "landmarks.npy"),
        np.load(folder / "missed.npy"),
    )


def _prepared_chunks(
    paths: list[str], done: int, workers: int
) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    starts = list(range(done, len(paths), _CHUNK))
    # Single-threaded detectors, one per process: MTCNN on one small image cannot keep two
    # threads busy, two processes can.
    context = multiprocessing.get_context("fork")
    with context.Pool(max(1, workers), initializer=_start_worker) as pool:
        chunks = pool.imap(_prepare_chunk, [paths[start : start + _CHUNK] for start in starts])
        yield from zip(starts, chunks, strict=True)


_detector: FaceDetector | None = None


def _start_worker() -> None:
    global _detector
    torch.set_num_threads(1)
    _detector = preparation_detector()


def preparation_detector() -> FaceDetector:
    return FaceDetector(
        min_face_size=PREPARATION_MIN_FACE,
        probability_threshold=DETECTION_THRESHOLD,
        max_side=1024,
        device=torch.device("cpu"),
    )


def _prepare_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    detector = _detector or preparation_detector()
    cut = [context_crop(load_rgb_image(path), detector) for path in paths]
    return (
        np.stack([crop.pixels for crop in cut]),
        np.stack([crop.landmarks for crop in cut]),
        np.array([crop.missed for crop in cut], dtype=bool),
    )


@dataclass(frozen=True)
class ContextCrop:
    pixels: np.ndarray  # (200, 200, 3) uint8
    landmarks: np.ndarray  # (5, 2) in the crop's pixels
    missed: bool  # MTCNN found no face: cut around the whole crop instead


def context_crop(tight_crop: Image.Image, detector: FaceDetector) -> ContextCrop:
    """The face of a tight crop as the service would box it, with context around it.

    The crop is padded by reflection (plain borders look like nothing in a photo), the
    detector runs on the padded image, and the detection that best covers the original
    crop is kept. When MTCNN finds nothing there, the whole crop is taken as the box.
    """
    width, height = tight_crop.size
    pixels = np.asarray(tight_crop)

    pad_x, pad_y = round(DETECTION_PADDING * width), round(DETECTION_PADDING * height)
    searched = Image.fromarray(np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), "reflect"))
    known = (pad_x, pad_y, pad_x + width, pad_y + height)
    candidates = [(_iou(face.box, known), face) for face in detector.detect(searched)]
    overlap, face = max(candidates, default=(0.0, None), key=lambda pair: pair[0])
    if face is None or overlap < MIN_FACE_OVERLAP:
        box = np.array([0, 0, width, height], dtype=np.float64)
        landmarks = TYPICAL_LANDMARKS * [width, height]
        missed = True
    else:
        box = np.array(face.box, dtype=np.float64) - [pad_x, pad_y, pad_x, pad_y]
        landmarks = np.array(face.landmarks, dtype=np.float64) - [pad_x, pad_y]
        missed = False
    centre = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) * CONTEXT_SCALE / 2
    corner = centre - half
    # Reflect as far as the context reaches past the crop (a box may already stick out).
    reach = max(0.0, *(-corner), *(centre + half - [width, height]))
    pad = int(np.ceil(reach)) + 1
    source = Image.fromarray(np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), "reflect"))
    region = (*(corner + pad), *(centre + half + pad))
    context = source.resize((CONTEXT_SIZE, CONTEXT_SIZE), Image.Resampling.BILINEAR, box=region)
    in_context = (landmarks - corner) * CONTEXT_SIZE / (2 * half)
    return ContextCrop(np.asarray(context), in_context.astype(np.float32), missed)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


@dataclass(frozen=True)
class FrameFaces:
    """Every face the service finds in a set of whole images, for image-level scores."""

    crops: torch.Tensor  # (F, 3, 160, 160) uint8
    image_of_face: np.ndarray  # (F,) index of the image each face came from
    # (F,) whether the face passes the service's quality check: only those decide an image's
    # verdict, so only those count towards an image's score here, as on the model card.
    judged: np.ndarray
    labels: np.ndarray  # (images,) 0 real, 1 fake


def frame_faces(
    images: Sequence[tuple[Path, int]],
    *,
    cache_root: Path,
    top_cut: float,
    min_face_size: int = 40,
) -> FrameFaces:
    """The service's detection and crops on whole images (e.g. video frames), cached; the
    crops leave out `top_cut` of each box at the top, as the model's card says."""
    digest = hashlib.sha256("\n".join(str(path) for path, _ in images).encode()).hexdigest()
    version = f"{PREPARATION_VERSION}.{_FRAMES_FORMAT}"
    cut = f"-cut{top_cut:g}" if top_cut else ""
    cache = cache_root / f"frames-v{version}-{len(images)}-{digest[:12]}{cut}.pt"
    if cache.is_file():
        return FrameFaces(**torch.load(cache, weights_only=False))
    detector = FaceDetector(
        min_face_size=min_face_size,
        probability_threshold=DETECTION_THRESHOLD,
        max_side=1024,
        device=torch.device("cpu"),
    )
    crops, owners = [], []
    judged: list[bool] = []
    for number, (path, _) in enumerate(images):
        picture = load_rgb_image(path)
        detected = detector.detect(picture)
        found = face_crops(picture, [face.box for face in detected], top_cut=top_cut)
        crops.append(found.model.round().clamp(0, 255).to(torch.uint8))
        owners.extend([number] * len(found.model))
        judged.extend(
            face_quality(
                box=face.box,
                landmarks=face.landmarks,
                crop=crop,
                detection_probability=face.probability,
                thresholds=QualityThresholds(),
            ).ok
            for face, crop in zip(detected, found.whole.numpy(), strict=True)
        )
    faces = FrameFaces(
        crops=torch.cat(crops) if crops else torch.empty((0, 3, CROP_SIZE, CROP_SIZE)),
        image_of_face=np.array(owners, dtype=np.int64),
        judged=np.array(judged, dtype=np.bool_),
        labels=np.array([label for _, label in images], dtype=np.int64),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(faces.__dict__, cache)
    return faces
