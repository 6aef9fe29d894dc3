"""Faces too small, blurred, turned away or uncertain are shown but never decide a verdict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from conftest import TEST_FRAMES
from deepfake_site.services import api_token_rotate
from detection import services
from detection.ml.quality import (
    QualityReason,
    QualityThresholds,
    face_quality,
    laplacian_variance,
    sideways_turn,
)
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory

FRONTAL = [(70.0, 80.0), (130.0, 80.0), (100.0, 110.0), (75.0, 140.0), (125.0, 140.0)]
PROFILE = [(70.0, 80.0), (100.0, 80.0), (150.0, 110.0), (75.0, 140.0), (105.0, 140.0)]


def test_sharpness_is_zero_on_a_flat_crop_and_high_on_detail() -> None:
    flat = np.full((3, 160, 160), 128.0)
    detail = np.random.default_rng(0).integers(0, 256, (3, 160, 160)).astype(np.float64)
    assert laplacian_variance(flat) == 0
    assert 1_000 < laplacian_variance(detail) < 1_000_000


def test_turn_is_near_zero_facing_the_camera_and_large_in_profile() -> None:
    assert abs(sideways_turn(FRONTAL)) < 0.05
    assert 1.0 < sideways_turn(PROFILE) < 3.0


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({}, []),
        ({"box": (0.0, 0.0, 30.0, 40.0)}, [QualityReason.TOO_SMALL]),
        ({"crop": np.full((3, 160, 160), 90.0)}, [QualityReason.BLURRY]),
        ({"landmarks": PROFILE}, [QualityReason.PROFILE]),
        ({"detection_probability": 0.96}, [QualityReason.LOW_DETECTION]),
    ],
)
def test_each_shortcoming_is_named(changes: dict[str, Any], reasons: list[QualityReason]) -> None:
    face: dict[str, Any] = {
        "box": (0.0, 0.0, 150.0, 180.0),
        "landmarks": FRONTAL,
        "crop": np.random.default_rng(1).integers(0, 256, (3, 160, 160)).astype(np.float64),
        "detection_probability": 0.999,
        **changes,
    }
    quality = face_quality(**face, thresholds=QualityThresholds())
    assert quality.reasons == reasons
    assert quality.ok is (reasons == [])


@pytest.fixture
def analysed_upload(
    settings: Any, demo_checkpoint: Path, db: None
) -> Callable[[str], tuple[Client, Submission]]:
    settings.DEEPFAKE_CHECKPOINT = str(demo_checkpoint)
    settings.DEEPFAKE_RUNTIME = "torch"

    def analyse(frame: str) -> tuple[Client, Submission]:
        owner = UserFactory.create()
        name = default_storage.save(
            f"frames/{frame}", ContentFile((TEST_FRAMES / frame).read_bytes())
        )
        submission = SubmissionFactory.create(uploader=owner, image=name, format="JPEG")
        services.analysis_run(submission_id=submission.id, task_id="t1", worker="w@h")
        client = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=owner)}")
        return client, Submission.objects.get(id=submission.id)

    return analyse


def test_a_photo_whose_only_face_is_tiny_is_inconclusive(
    analysed_upload: Callable[[str], tuple[Client, Submission]],
) -> None:
    # real_frame_0's face is about 32 px wide in the 960 px test frame.
    client, submission = analysed_upload("real_frame_0.jpg")
    body = client.get(reverse("api:submission-detail", args=[submission.id])).json()
    assert (body["status"], body["verdict"], body["fake_probability"]) == (
        "done",
        "inconclusive",
        None,
    )
    (face,) = body["faces"]
    assert face["quality"] == "low" and "too_small" in face["quality_reasons"]
    assert 20 <= face["size_px"] < 60
    assert not hasattr(submission, "review_case"), "an inconclusive photo opens no case"


def test_the_faces_of_a_clear_frame_are_good_enough_to_judge(
    analysed_upload: Callable[[str], tuple[Client, Submission]],
) -> None:
    client, submission = analysed_upload("fake_frame_0.jpg")
    body = client.get(reverse("api:submission-detail", args=[submission.id])).json()
    assert [face["quality"] for face in body["faces"]] == ["ok", "ok"]
    assert all(face["quality_reasons"] == [] and face["size_px"] >= 60 for face in body["faces"])
    assert body["verdict"] in {"fake", "uncertain", "real"}
    assert body["fake_probability"] == max(face["fake_probability"] for face in body["faces"])
