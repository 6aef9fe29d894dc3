"""Labelled face sets on disk, and how they are split into training and held-out parts.

A face set is a folder with `labels.csv` (columns `file`, `label`, optional `group`, and any
others as the face's attributes, e.g. UTKFace's age, gender and race) and the images under
`faces/`: the DFDC crops, UTKFace photos, the GAN check set, and what
`manage.py export_decisions` writes all have that shape. A face's group keeps related faces
on one side of a split (a DFDC fake shares its group with the real video it was made from);
without a group column every face is its own group.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LABELS = {"real": 0, "fake": 1}


class TrainingError(Exception):
    """The data, the cache or a resumed run does not fit the requested training."""


@dataclass(frozen=True)
class LabelledFace:
    path: Path
    label: int  # 0 real, 1 fake
    group: str
    source: str  # the set it came from: dfdc, utkface, ...
    # The set's other columns, as written there (UTKFace: age, gender, race).
    attributes: Mapping[str, str] = field(default_factory=dict)


def read_face_set(folder: Path, source: str) -> list[LabelledFace]:
    """Every face of the set in `folder`, in the order of its labels.csv."""
    folder = folder.resolve()
    labels_file = folder / "labels.csv"
    if not labels_file.is_file():
        raise TrainingError(f"{labels_file} not found (a face set has labels.csv and faces/)")
    with labels_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise TrainingError(f"{labels_file} lists no faces")
    missing = {"file", "label"} - set(rows[0])
    if missing:
        raise TrainingError(f"{labels_file} lacks the columns {sorted(missing)}")
    unknown = sorted({row["label"] for row in rows} - set(LABELS))
    if unknown:
        raise TrainingError(f"{labels_file}: labels must be real or fake, found {unknown}")
    return [
        LabelledFace(
            path=folder / "faces" / row["file"],
            label=LABELS[row["label"]],
            group=row.get("group") or row["file"],
            source=source,
            attributes={
                key: value
                for key, value in row.items()
                if key not in ("file", "label", "group") and value
            },
        )
        for row in rows
    ]


def split_by_group(
    faces: Sequence[LabelledFace], held_out_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of kept and held-out faces; no group has faces on both sides.

    The DFDC validation split of every model so far is this function with fraction 0.15 and
    seed 0 over the whole labels.csv: keep it so, or the numbers stop being comparable.
    """
    if not 0 < held_out_fraction < 1:
        raise TrainingError("the held-out fraction must be between 0 and 1")
    groups = sorted({face.group for face in faces})
    np.random.default_rng(seed).shuffle(groups)
    held_out_groups = set(groups[: max(1, round(held_out_fraction * len(groups)))])
    kept = [i for i, face in enumerate(faces) if face.group not in held_out_groups]
    held_out = [i for i, face in enumerate(faces) if face.group in held_out_groups]
    if not kept or not held_out:
        raise TrainingError("too few groups to split")
    return kept, held_out


@dataclass(frozen=True)
class PhotoSplit:
    """Real photos in three parts: to train on, to fit thresholds on, to check them on."""

    train: list[int]
    calibration: list[int]
    test: list[int]


def split_photos(faces: Sequence[LabelledFace], seed: int, held_out: float = 0.15) -> PhotoSplit:
    """Thresholds are fitted on `calibration` and checked on `test`, never on the same faces."""
    rest, test = split_by_group(faces, held_out, seed)
    kept, calibration = split_by_group([faces[i] for i in rest], held_out / (1 - held_out), seed)
    return PhotoSplit(
        train=[rest[i] for i in kept], calibration=[rest[i] for i in calibration], test=test
    )
