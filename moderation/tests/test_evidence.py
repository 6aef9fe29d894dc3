"""The evidence package of a decided case, as JSON and as a PDF that renders its images."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from conftest import require_service
from deepfake_site.services import api_token_rotate
from moderation import services
from moderation.models import Decision, ReviewCase
from moderation.tests.factories import SubmissionFactory

pytestmark = pytest.mark.django_db

CROP_BLUE = (20, 60, 230)
HEATMAP_RED = (230, 20, 20)
NOTE = "Blending seams along the jaw & a <mismatched> ear."
MODEL_DETAILS = {
    "name": "faceproof-test",
    "version": "0123456789ab",
    "checkpoint_sha256": "0123456789ab" + "c" * 52,
    "trained": True,
    "input_size": 160,
    "mirror_average": True,
    "thresholds": {"fake": 0.62, "uncertain": 0.31, "set_by": "model card", "selection": "FPR 1%"},
    "calibration": {"temperature": 1.7, "bias": -0.25, "method": "Platt scaling"},
    "quality_thresholds": {"min_size_px": 60, "min_sharpness": 8.0},
}
PDQ = "f0" * 32
PROVENANCE: dict[str, Any] = {
    "exif": {
        "camera_make": "Canon",
        "camera_model": "EOS R5",
        "software": None,
        "captured_at": "2026:11:30 10:02:11",
        "gps_present": True,
    },
    "xmp": None,
    "c2pa": {
        "validation_state": "invalid",
        "validation_codes": ["assertion.dataHash.mismatch"],
        "claim_generator": "Adobe Photoshop",
        "title": "portrait.jpg",
        "signed_by": "Adobe Inc.",
        "signed_at": None,
        "actions": [{"action": "c2pa.edited", "software": None, "digital_source_type": None}],
        "ai_generated": False,
        "ai_assertions": [],
    },
    "unreadable": [],
}


def png(color: tuple[int, int, int], size: int = 96) -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue(), name="face.png")


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def decided_case(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User
) -> ReviewCase:
    case = make_case(
        faces=2,
        model_details=MODEL_DETAILS,
        model_version="0123456789ab",
        pdq=PDQ,
        pdq_quality=90,
        provenance=PROVENANCE,
    )
    for face in case.submission.faces.all():
        face.crop = png(CROP_BLUE)
        face.heatmap = png(HEATMAP_RED)
        face.save()
    services.review_case_claim(case=case, user=other_moderator)
    services.review_case_release(case=case, user=other_moderator, note="Not my area.")
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM, note=NOTE)
    case.refresh_from_db()
    return case


def evidence_url(case: ReviewCase, format: str | None = None) -> str:
    url = reverse("api:submission-evidence", args=[case.submission_id])
    return f"{url}?format={format}" if format else url


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")


def test_the_json_holds_the_file_hashes_model_faces_heatmaps_and_decision_chain(
    decided_case: ReviewCase, moderator: User
) -> None:
    response = api_client(moderator).get(evidence_url(decided_case))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    body = response.json()
    submission = decided_case.submission

    assert body["submission"]["id"] == str(submission.id)
    assert body["generated_by"] == "moderator"
    stored = submission.image.open("rb").read()
    assert body["file"]["upload_sha256"] == submission.sha256
    assert body["file"]["stored_sha256"] == hashlib.sha256(stored).hexdigest()
    assert (body["file"]["pdq"], body["file"]["pdq_quality"]) == (PDQ, 90)
    assert body["provenance"] == PROVENANCE
    assert body["model"]["checkpoint_sha256"] == MODEL_DETAILS["checkpoint_sha256"]
    assert body["model"]["thresholds"]["fake"] == 0.62
    assert body["model"]["mirror_average"] is True
    assert body["model"]["calibration"] == {
        "temperature": 1.7,
        "bias": -0.25,
        "method": "Platt scaling",
    }

    assert len(body["faces"]) == 2
    for face, row in zip(submission.faces.order_by("index"), body["faces"], strict=True):
        heatmap = face.heatmap.open("rb").read()
        assert base64.b64decode(row["heatmap"]["base64"]) == heatmap
        assert row["heatmap"]["sha256"] == hashlib.sha256(heatmap).hexdigest()
        assert row["heatmap"]["media_type"] == "image/png"
        assert base64.b64decode(row["crop"]["base64"]) == face.crop.open("rb").read()
        assert row["box"] == face.box and row["quality"] == face.quality

    chain = [(event["kind"], event["actor"], event["note"]) for event in body["decision_chain"]]
    assert chain == [
        ("opened", None, ""),
        ("claimed", "other-moderator", ""),
        ("released", "other-moderator", "Not my area."),
        ("confirmed", "moderator", NOTE),
    ]
    assert body["moderation"]["state"] == "confirmed"
    assert body["moderation"]["decided_by"] == "moderator"
    assert body["moderation"]["inherited_from"] is None


def test_an_inherited_outcome_carries_the_near_copys_decision_and_says_so(
    decided_case: ReviewCase, moderator: User, uploader: User
) -> None:
    copy = SubmissionFactory.create(
        uploader=uploader, pdq=PDQ, pdq_quality=90, verdict="fake", fake_probability=0.9
    )
    assert services.review_case_open(submission=copy) is None  # it inherits

    body = api_client(moderator).get(reverse("api:submission-evidence", args=[copy.id])).json()
    assert body["moderation"]["state"] == "confirmed"
    assert body["moderation"]["inherited_from"] == {
        "submission_id": str(decided_case.submission_id),
        "case_id": str(decided_case.pk),
        "pdq_distance": 0,
    }
    assert [event["kind"] for event in body["decision_chain"]][-1] == "confirmed"
    assert body["file"]["pdq"] == PDQ and body["provenance"] is None


def pdf_tool(name: str) -> str:
    path = shutil.which(name)
    require_service(path is not None, f"{name} (Debian's poppler-utils)")
    assert path is not None
    return path


def first_page_png(pdf: bytes, folder: Path) -> Image.Image:
    (folder / "evidence.pdf").write_bytes(pdf)
    subprocess.run(
        [
            *(pdf_tool("pdftoppm"), "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile"),
            *(str(folder / "evidence.pdf"), str(folder / "page")),
        ],
        check=True,
        timeout=60,
    )
    return Image.open(folder / "page.png").convert("RGB")


def pixels_near(image: Image.Image, color: tuple[int, int, int], tolerance: int = 40) -> int:
    distance = np.abs(np.asarray(image, dtype=np.int16) - np.array(color, dtype=np.int16))
    return int((distance <= tolerance).all(axis=2).sum())


def test_the_pdf_renders_the_crops_and_heatmaps_on_its_first_page_and_holds_the_chain(
    decided_case: ReviewCase, moderator: User, tmp_path: Path
) -> None:
    response = api_client(moderator).get(evidence_url(decided_case, "pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="evidence-{decided_case.submission_id}.pdf"'
    )
    pdf = response.content
    assert pdf.startswith(b"%PDF")

    page = first_page_png(pdf, tmp_path)
    assert page.size in {(413, 585), (414, 585)}  # A4 at 50 dpi, rounded either way
    # At 50 dpi a 42 mm picture is about 80 x 80 pixels: two faces, crop and heatmap each.
    assert pixels_near(page, HEATMAP_RED) > 2 * 60 * 60
    assert pixels_near(page, CROP_BLUE) > 2 * 60 * 60

    text = subprocess.run(
        [pdf_tool("pdftotext"), "-layout", str(tmp_path / "evidence.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    flat = " ".join(text.split())
    for expected in (
        "Decision chain",
        "Confirmed manipulated",
        "Released",
        "other-moderator",
        "Not my area.",
        NOTE,
        decided_case.submission.sha256,
        str(MODEL_DETAILS["checkpoint_sha256"]),
        "temperature 1.7, bias -0.250 (Platt scaling)",
        "Scoring each face averaged with its mirror image",
        PDQ,
        "camera Canon EOS R5",
        "a GPS position was recorded (not kept)",
        "Edit history (XMP): none.",
        "manifest invalid, claimed by Adobe Photoshop, signed by Adobe Inc., actions: c2pa.edited",
    ):
        assert expected in flat, expected
    images = subprocess.run(
        [pdf_tool("pdfimages"), "-list", str(tmp_path / "evidence.pdf")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()[2:]
    assert len(images) == 2 * 2 + 1  # each face's crop and heatmap, and the overlay


def test_a_submission_analysed_before_models_were_recorded_says_so(
    make_case: Callable[..., ReviewCase], moderator: User, tmp_path: Path
) -> None:
    case = make_case(model_details={})
    api = api_client(moderator)
    body = api.get(evidence_url(case)).json()
    assert body["model"]["version"] == case.submission.model_version
    assert body["model"]["checkpoint_sha256"] is None
    assert body["model"]["thresholds"]["fake"] is None
    assert body["model"]["calibration"] == {"temperature": None, "bias": None, "method": None}
    assert body["model"]["mirror_average"] is None
    assert body["moderation"]["state"] == "pending"
    assert [event["kind"] for event in body["decision_chain"]] == ["opened"]
    pdf = api.get(evidence_url(case, "pdf")).content
    (tmp_path / "old.pdf").write_bytes(pdf)
    text = subprocess.run(
        [pdf_tool("pdftotext"), str(tmp_path / "old.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "Checkpoint sha256 not recorded" in " ".join(text.split())
    assert "Scoring not recorded" in " ".join(text.split())


def test_a_score_recorded_before_calibrations_had_a_bias_says_it_had_none(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    details = {
        **MODEL_DETAILS,
        "calibration": {"temperature": 1.7, "method": "temperature scaling"},
    }
    case = make_case(model_details=details)
    body = api_client(moderator).get(evidence_url(case)).json()
    assert body["model"]["calibration"] == {
        "temperature": 1.7,
        "bias": 0.0,
        "method": "temperature scaling",
    }


@pytest.mark.parametrize("format", [None, "pdf"])
def test_errors_are_json_even_when_the_pdf_was_asked_for(
    moderator: User, uploader: User, make_case: Callable[..., ReviewCase], format: str | None
) -> None:
    case = make_case()
    forbidden = api_client(uploader).get(evidence_url(case, format))
    assert forbidden.status_code == 403
    assert forbidden["Content-Type"] == "application/json"
    assert forbidden.json()["code"] == "permission_denied"
    url = reverse("api:submission-evidence", args=["00000000-0000-0000-0000-000000000000"])
    missing = api_client(moderator).get(f"{url}?format={format}" if format else url)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_an_unknown_format_is_404(moderator: User, make_case: Callable[..., ReviewCase]) -> None:
    response = api_client(moderator).get(evidence_url(make_case(), "xml"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_case_page_offers_the_evidence_for_download(
    client: Client, moderator: User, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    client.force_login(moderator)
    page = client.get(reverse("moderation:case-detail", args=[case.pk])).content.decode()
    assert f'href="{evidence_url(case)}?format=pdf"' in page
    # The session that shows the page can download it: no token needed.
    response = client.get(evidence_url(case, "pdf"))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
