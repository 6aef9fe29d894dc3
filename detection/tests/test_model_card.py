"""The model card page and its two plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from detection.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/model/"  # checked against reverse() below


@pytest.fixture
def trained_checkpoint(tmp_path: Path, settings: Any) -> Path:
    """A checkpoint file with a trained model's card and plots; the page never loads weights."""
    checkpoint = tmp_path / "faceproof-test.pth"
    checkpoint.write_bytes(b"weights")
    card = {
        "name": "faceproof-test",
        "trained": True,
        "input_size": 160,
        "training_data": {
            "dataset": "DFDC face crops, one per video",
            "licence": "DFDC: licensed for non-commercial research only.",
            "crops": 16000,
        },
        "metrics": {
            "validation": {
                "auc": 0.8123,
                "auc_low": 0.7901,
                "auc_high": 0.8345,
                "tpr_at_1_fpr": 0.21,
                "ece": 0.031,
                "brier": 0.17,
            },
            "note": "measured on the DFDC validation split",
        },
        "thresholds": {"flag": 0.91, "uncertain": 0.72},
        "threshold_selection": "flag at 1 % FPR, uncertain at 5 %",
        "calibration": {"temperature": 1.7, "bias": -0.25, "method": "Platt scaling"},
        "mirror_average": True,
        "training": {"epochs_run": 3, "command": "python manage.py train_detector --epochs 3"},
        "limitations": ["It has only seen DFDC face swaps."],
    }
    checkpoint.with_suffix(".json").write_text(json.dumps(card))
    for kind in ("roc", "reliability"):
        Image.new("RGB", (8, 8), "white").save(tmp_path / f"faceproof-test.{kind}.png")
    settings.DEEPFAKE_CHECKPOINT = str(checkpoint)
    return checkpoint


@pytest.fixture
def signed_in(client: Client) -> Client:
    client.force_login(UserFactory.create())
    return client


def test_url_is_registered() -> None:
    assert reverse("detection:model-card") == URL


def test_anonymous_visitor_is_sent_to_log_in(client: Client, trained_checkpoint: Path) -> None:
    for url in (URL, URL + "?plot=roc"):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("login") in response["Location"]


def test_signed_in_user_sees_the_cards_facts(signed_in: Client, trained_checkpoint: Path) -> None:
    response = signed_in.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    version = hashlib.sha256(b"weights").hexdigest()[:12]
    for expected in (
        "faceproof-test",
        version,
        "DFDC face crops, one per video",
        "non-commercial research only",
        "0.8123",
        "ROC AUC, 95 % interval from</td><td>0.7901",
        "ROC AUC, 95 % interval to</td><td>0.8345",
        "measured on the DFDC validation split",
        "0.9100",
        "0.7200",
        "temperature 1.700, bias -0.250 (Platt scaling)",
        "<dt>Scoring</dt><dd>each face averaged with its mirror image</dd>",
        "<dt>Face region</dt><dd>the whole detected face box</dd>",
        "python manage.py train_detector --epochs 3",
        "It has only seen DFDC face swaps.",
        f"{URL}?plot=roc",
        f"{URL}?plot=reliability",
    ):
        assert expected in page, expected
    assert "Untrained model" not in page
    assert f'href="{URL}"' in page, "the navigation links to the page"


def test_a_model_that_leaves_out_the_top_of_the_face_box_says_so(
    signed_in: Client, trained_checkpoint: Path
) -> None:
    card = json.loads(trained_checkpoint.with_suffix(".json").read_text())
    trained_checkpoint.with_suffix(".json").write_text(json.dumps({**card, "crop_top_cut": 0.2}))
    page = signed_in.get(URL).content.decode()
    assert "<dt>Face region</dt><dd>the detected face box without its top 20 %" in page


def test_a_model_started_from_pretrained_weights_names_them(
    signed_in: Client, trained_checkpoint: Path
) -> None:
    card = json.loads(trained_checkpoint.with_suffix(".json").read_text())
    pretrained = "dlib's face recognition network, trained on about three million faces"
    card["training_data"]["pretrained"] = pretrained
    trained_checkpoint.with_suffix(".json").write_text(json.dumps(card))
    page = signed_in.get(URL).content.decode()
    assert f"<strong>Starting weights:</strong> {pretrained}" in page.replace("&#x27;", "'")


def test_untrained_model_gets_a_big_warning(
    signed_in: Client, settings: Any, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "demo.pth"
    checkpoint.write_bytes(b"random weights")
    checkpoint.with_suffix(".json").write_text(json.dumps({"name": "demo", "trained": False}))
    settings.DEEPFAKE_CHECKPOINT = str(checkpoint)
    page = signed_in.get(URL).content.decode()
    assert "Untrained model" in page and "Its scores mean nothing" in page
    assert "the site settings" in page, "thresholds fall back to the settings"


def test_missing_checkpoint_is_said_plainly(
    signed_in: Client, settings: Any, tmp_path: Path
) -> None:
    settings.DEEPFAKE_CHECKPOINT = str(tmp_path / "absent.pth")
    response = signed_in.get(URL)
    assert response.status_code == 200
    assert "No model is installed" in response.content.decode()


def test_plots_are_served_as_png_with_nosniff(signed_in: Client, trained_checkpoint: Path) -> None:
    for kind in ("roc", "reliability"):
        response = signed_in.get(URL, {"plot": kind})
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response.getvalue().startswith(b"\x89PNG")


def test_only_the_two_plots_are_served(signed_in: Client, trained_checkpoint: Path) -> None:
    for kind in ("card", "../faceproof-test", "json", ""):
        assert signed_in.get(URL, {"plot": kind}).status_code == 404


def test_absent_plot_is_404(signed_in: Client, trained_checkpoint: Path) -> None:
    (trained_checkpoint.parent / "faceproof-test.roc.png").unlink()
    assert signed_in.get(URL, {"plot": "roc"}).status_code == 404
    assert "?plot=roc" not in signed_in.get(URL).content.decode()


def test_photo_checks_are_shown_group_by_group(signed_in: Client, trained_checkpoint: Path) -> None:
    """Moderators see whose real photos the model flags: by age, gender and ethnicity."""
    card = json.loads(trained_checkpoint.with_suffix(".json").read_text())
    card["evaluations"] = {
        "utkface_photos": {
            "title": "ordinary photos of real people",
            "metrics": {"count": 250, "flagged_fake": 0.012, "flagged_uncertain": 0.02},
            "by_group": [
                {
                    "attribute": "age",
                    "group": "65 and over",
                    "count": 50,
                    "judged_fake": 2,
                    "judged_uncertain": 3,
                    "mean_probability": 0.3125,
                },
                {
                    "attribute": "ethnicity",
                    "group": "asian",
                    "count": 200,
                    "judged_fake": 1,
                    "judged_uncertain": 2,
                    "mean_probability": 0.25,
                },
            ],
        }
    }
    card.pop("metrics")
    trained_checkpoint.with_suffix(".json").write_text(json.dumps({**card, "format": 2}))

    page = signed_in.get(URL).content.decode()

    assert "ordinary photos of real people, by group" in page
    assert (
        "<td>Age</td><td>65 and over</td><td>50</td><td>2 (4.0 %)</td><td>3 (6.0 %)</td>"
        "<td>0.3125</td>"
    ) in page
    assert "<td>Ethnicity</td><td>asian</td><td>200</td><td>1 (0.5 %)</td>" in page
