"""A recipe's training faces packed small enough to travel to an accelerator machine.

A device call carries at most 64 MiB, and the face cache is 4.5 GB: the pack keeps only the
faces one recipe trains on (never a held-out face), each context crop shrunk to `side`
pixels and WebP-compressed (half JPEG's size at the same quality: 1.7 kB at 128 px and
quality 85), with its landmarks and the recipe's units. Unpacked, the crops
are scaled back up to the cache's 200 px, so the very blending and augmentation code of a
CPU run works on them: a packed run differs from a cached one only in the detail the
shrinking took away.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from detection.ml.storage import write_atomically
from workbench.training.crops import CONTEXT_SIZE, FaceCache
from workbench.training.data import TrainingError
from workbench.training.run import TrainingData, recipe_units

PACK_FILE = "faces.npz"
T = TypeVar("T")


@dataclass(frozen=True)
class PackedFaces:
    cache: FaceCache  # the packed faces only, scaled back to the cache's size
    units: list[list[tuple[int, int]]]  # the recipe's units, as indices into `cache`
    recipe: str
    side: int  # how many pixels each context crop kept


def write_pack(
    data: TrainingData, recipe: str, folder: Path, *, side: int, quality: int
) -> tuple[Path, int]:
    """Pack the faces of `recipe`'s units; returns the pack's path and its size in bytes."""
    if not 64 <= side <= CONTEXT_SIZE or not 30 <= quality <= 100:
        raise TrainingError(f"side must be 64-{CONTEXT_SIZE} px and quality 30-100")
    units = recipe_units(data, recipe)
    faces = sorted({face for unit in units for _, face in unit})
    position = {face: i for i, face in enumerate(faces)}
    encoded = [_encoded(np.asarray(data.cache.context[face]), side, quality) for face in faces]
    entries = [(kind, position[face]) for unit in units for kind, face in unit]
    arrays: dict[str, Any] = {
        "images": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "ends": np.cumsum([len(blob) for blob in encoded]),
        "landmarks": data.cache.landmarks[faces],
        "missed": data.cache.missed[faces],
        "entries": np.array(entries, dtype=np.int32),
        "unit_ends": np.cumsum([len(unit) for unit in units]),
        "recipe": np.array(recipe),
        "side": np.array(side),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PACK_FILE
    write_atomically(path, lambda handle: np.savez(handle, **arrays))
    return path, path.stat().st_size


def read_pack(folder: Path, *, threads: int = 8) -> PackedFaces:
    """The packed faces decoded into memory (about 120 kB a face), with the recipe's units."""
    path = folder / PACK_FILE
    if not path.is_file():
        raise TrainingError(f"no pack at {path}: write one with `make gpu-pack`")
    with np.load(path) as pack:
        arrays: dict[str, Any] = {name: pack[name] for name in pack.files}
    with ThreadPoolExecutor(threads) as pool:  # OpenCV releases the GIL while decoding
        context = np.stack(list(pool.map(_decoded, _cut(arrays["images"], arrays["ends"]))))
    entries = [(int(kind), int(face)) for kind, face in arrays["entries"]]
    return PackedFaces(
        cache=FaceCache(folder, context, arrays["landmarks"], arrays["missed"]),
        units=[list(unit) for unit in _cut(entries, arrays["unit_ends"])],
        recipe=str(arrays["recipe"]),
        side=int(arrays["side"]),
    )


def _cut(items: Sequence[T], ends: np.ndarray) -> list[Sequence[T]]:
    """`items` cut into consecutive runs that end at `ends` (as the pack stores them)."""
    return [items[start:end] for start, end in zip(np.r_[0, ends[:-1]], ends, strict=True)]


def _encoded(context: np.ndarray, side: int, quality: int) -> bytes:
    small = cv2.resize(context, (side, side), interpolation=cv2.INTER_AREA)
    # OpenCV encodes BGR; flipping keeps the codec's chroma weights on the right channels.
    ok, blob = cv2.imencode(
        ".webp", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality]
    )
    if not ok:
        raise TrainingError("OpenCV could not WebP-encode a face")
    return blob.tobytes()


def _decoded(blob: np.ndarray) -> np.ndarray:
    small = cv2.imdecode(blob, cv2.IMREAD_COLOR)
    if small is None:
        raise TrainingError("the pack holds a face that is not a WebP image")
    size = (CONTEXT_SIZE, CONTEXT_SIZE)
    return np.ascontiguousarray(cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)[..., ::-1])
