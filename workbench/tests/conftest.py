"""Fixtures the workbench's training tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from workbench.tests.face_sets import tight_faces, write_face_set


@pytest.fixture(scope="module")
def face_sets(tmp_path_factory: pytest.TempPathFactory, calibration_crops: torch.Tensor) -> Path:
    """A DFDC-like set (each face and its mirror, real and "fake", share a group) and a
    UTKFace-like set of real photos (each face in a few colourings)."""
    root = tmp_path_factory.mktemp("face-sets")
    faces = tight_faces(calibration_crops[:4])
    write_face_set(
        root / "dfdc",
        [
            row
            for index, face in enumerate(faces)
            for row in (
                (f"real{index}.jpg", face, "real", f"video{index}"),
                (
                    f"fake{index}.jpg",
                    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                    "fake",
                    f"video{index}",
                ),
            )
        ],
    )
    write_face_set(
        root / "utkface",
        [
            (
                f"photo{index}-{tint}.jpg",
                Image.blend(face, Image.new("RGB", face.size, tint), 0.15),
                "real",
                "",
            )
            for index, face in enumerate(faces)
            for tint in ("white", "orange", "navy")
        ],
        attributes=[
            {"age": str(age), "gender": gender, "race": race}
            for age, gender, race in zip(
                [8, 30, 70, 45] * 3,
                ["female", "male"] * 6,
                ["white", "white", "asian"] * 4,
                strict=True,
            )
        ],
    )
    return root
