"""Moderators' decisions exported as a face set that the model evaluation reads."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from detection.models import Face
from moderation import services
from moderation.models import Decision, ReviewCase
from moderation.tests.factories import FaceFactory

pytestmark = pytest.mark.django_db


def stored_crop(name: str, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return default_storage.save(name, ContentFile(buffer.getvalue()))


@pytest.fixture
def decided(make_case: Callable[..., ReviewCase], moderator: User) -> dict[str, ReviewCase]:
    return decided_photos(make_case, moderator)


def decided_photos(make_case: Callable[..., ReviewCase], moderator: User) -> dict[str, ReviewCase]:
    """A confirmed two-face photo, a cleared one with a low-quality face, and an open case."""
    cases = {}
    for name, decision, probabilities in (
        ("confirmed", Decision.CONFIRM, (0.95, 0.6)),
        ("cleared", Decision.CLEAR, (0.55, 0.1)),
        ("open", None, (0.9,)),
    ):
        case = make_case(faces=0, fake_probability=max(probabilities))
        for index, probability in enumerate(probabilities, start=1):
            FaceFactory.create(
                submission=case.submission,
                index=index,
                fake_probability=probability,
                crop=stored_crop(f"{name}-{index}.png", seed=index),
                quality=Face.Quality.LOW if name == "cleared" and index == 2 else Face.Quality.OK,
            )
        if decision is not None:
            services.review_case_decide(case=case, user=moderator, decision=decision, note="x")
        cases[name] = case
    return cases


def test_export_writes_the_decided_good_faces_with_labels_and_groups(
    decided: dict[str, ReviewCase], tmp_path: Path
) -> None:
    stdout = io.StringIO()
    call_command("export_decisions", output=tmp_path / "export", stdout=stdout)
    with (tmp_path / "export" / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    confirmed, cleared = decided["confirmed"].submission, decided["cleared"].submission
    assert rows == [
        {
            "file": f"{confirmed.id}-1.png",
            "label": "fake",
            "group": confirmed.sha256,
            "source": "moderation-flagged",
        },
        {
            "file": f"{cleared.id}-1.png",
            "label": "real",
            "group": cleared.sha256,
            "source": "moderation-flagged",
        },
    ]
    for row in rows:
        assert Image.open(tmp_path / "export" / "faces" / row["file"]).size == (160, 160)
    assert "wrote 2 faces (1 real, 1 fake)" in stdout.getvalue()


def test_export_refuses_a_folder_with_something_in_it(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("mine")
    with pytest.raises(CommandError, match="is not empty"):
        call_command("export_decisions", output=tmp_path, stdout=io.StringIO())
