"""Tiny face sets in the data sets' own layout, made from the test frames' faces."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image


def write_face_set(
    folder: Path,
    faces: list[tuple[str, Image.Image, str, str]],
    attributes: Sequence[Mapping[str, str]] = (),
) -> Path:
    """labels.csv and faces/ as the data sets have them; rows are (file, image, label, group),
    and `attributes`, when given, each face's further columns (UTKFace: age, gender, race)."""
    (folder / "faces").mkdir(parents=True)
    extra = list(attributes[0]) if attributes else []
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "group", *extra])
        for index, (name, image, label, group) in enumerate(faces):
            image.save(folder / "faces" / name, quality=95)
            writer.writerow([name, label, group, *(attributes[index][key] for key in extra)])
    return folder


def tight_faces(crops: torch.Tensor) -> list[Image.Image]:
    """Face crops made tighter than MTCNN's box and scaled to 224 px, as DFDC's are."""
    return [
        Image.fromarray(crop.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy())
        .crop((16, 16, 144, 144))
        .resize((224, 224))
        for crop in crops
    ]
