"""The JSON API: token auth, upload (202 + Location), reads, errors as {code, detail}."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from PIL import Image

from deepfake_site.services import api_token_rotate
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory, make_analysed
from detection.validation import RejectionCode

pytestmark = pytest.mark.django_db


def jpeg_file(color: str = "teal", name: str = "photo.jpg") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = name
    return buffer


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


@pytest.fixture
def platform() -> User:
    return UserFactory.create(username="platform")


@pytest.fixture
def api(platform: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=platform)}")


def test_upload_answers_202_with_the_submission_and_its_location(api: Client) -> None:
    response = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert response.status_code == 202
    body = response.json()
    submission = Submission.objects.get()
    assert body["id"] == str(submission.id)
    assert body["status"] == "queued"
    assert body["queue_position"] == 0
    assert response["Location"].endswith(reverse("api:submission-detail", args=[submission.id]))


def test_duplicate_upload_answers_200_with_the_existing_submission(api: Client) -> None:
    first = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    second = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, RejectionCode.MISSING_IMAGE),
        ({"image": io.BytesIO(b"GIF89a-not-really")}, RejectionCode.UNSUPPORTED_FORMAT),
        ({"image": io.BytesIO(b"")}, RejectionCode.EMPTY_FILE),
    ],
    ids=["missing", "gif", "empty"],
)
def test_bad_uploads_answer_400_with_a_machine_readable_code(
    api: Client, payload: dict[str, Any], code: str
) -> None:
    for value in payload.values():
        value.name = "x.jpg"
    response = api.post(reverse("api:submission-list"), payload)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert not Submission.objects.exists()


def test_a_text_value_in_a_file_part_refuses_the_whole_request(api: Client) -> None:
    payload = {"image": jpeg_file(), "video": "{}"}
    response = api.post(reverse("api:submission-list"), payload)
    assert response.status_code == 400
    assert response.json()["code"] == RejectionCode.MALFORMED_REQUEST
    assert "“video” part must be a file" in response.json()["detail"]
    assert not Submission.objects.exists()


def test_over_the_byte_limit_answers_413_file_too_large(api: Client, settings: Any) -> None:
    settings.UPLOAD_MAX_BYTES = 500
    response = api.post(reverse("api:submission-list"), {"image": jpeg_file()})
    assert response.status_code == 413
    assert response.json()["code"] == RejectionCode.FILE_TOO_LARGE


def test_detail_shows_faces_with_heatmap_urls_and_the_model(api: Client, platform: User) -> None:
    submission = make_analysed(
        SubmissionFactory.create(uploader=platform), fake_probabilities=(0.8, 0.2)
    )
    body = api.get(reverse("api:submission-detail", args=[submission.id])).json()
    assert body["status"] == "done"
    assert body["verdict"] == "fake"
    assert body["fake_probability"] == pytest.approx(0.8)
    assert [face["index"] for face in body["faces"]] == [1, 2]
    assert body["faces"][0]["box"] == [1, 2, 20, 22]
    assert body["faces"][1]["real_probability"] == pytest.approx(0.8)
    assert body["faces"][0]["heatmap_url"].startswith("http://testserver/")
    assert body["model"]["version"] == "0123456789ab"
    assert body["model"]["trained"] is False
    assert "untrained" in body["model"]["warning"]
    assert body["timings_ms"] == {"total": 321.0}
    heatmap = api.get(body["faces"][0]["heatmap_url"])
    assert heatmap.status_code == 200


def test_another_users_submission_is_404_in_json(api: Client) -> None:
    response = api.get(reverse("api:submission-detail", args=[SubmissionFactory.create().id]))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_holds_only_the_callers_submissions_filtered_by_status(
    api: Client, platform: User
) -> None:
    make_analysed(SubmissionFactory.create(uploader=platform))
    SubmissionFactory.create(uploader=platform)
    SubmissionFactory.create()
    body = api.get(reverse("api:submission-list")).json()
    assert body["count"] == 2
    done = api.get(reverse("api:submission-list"), {"status": "done"}).json()
    assert [item["status"] for item in done["results"]] == ["done"]


def test_requests_without_a_token_answer_401_in_json() -> None:
    response = Client().get(reverse("api:submission-list"))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_openapi_schema_and_docs_are_served() -> None:
    schema = Client().get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "openapi: 3" in text or '"openapi": "3' in text
    assert "/api/v1/submissions/" in text
    docs = Client().get(reverse("api-docs"))
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()


def test_create_api_token_command_prints_a_working_key(capsys: pytest.CaptureFixture[str]) -> None:
    UserFactory.create(username="integrator")
    call_command("create_api_token", "integrator")
    key = capsys.readouterr().out.split()[-1]
    assert (
        Client(HTTP_AUTHORIZATION=f"Token {key}").get(reverse("api:submission-list")).status_code
        == 200
    )


# How the card's photo check judged one group: the API returns it as the card has it.
_OLDER_PEOPLE = {
    "attribute": "age",
    "group": "65 and over",
    "count": 50,
    "judged_fake": 1,
    "judged_uncertain": 2,
    "mean_probability": 0.4,
}


@pytest.fixture
def running_model(tmp_path: Any, settings: Any) -> Any:
    """A checkpoint with a measured card, photo checks by group included."""
    checkpoint = tmp_path / "faceproof-test.pth"
    checkpoint.write_bytes(b"weights")
    card = {
        "format": 2,
        "name": "faceproof-test",
        "trained": True,
        "network": "face_resnet",
        "input_size": 160,
        "crop_top_cut": 0.2,
        "thresholds": {"flag": 0.74, "uncertain": 0.67, "selection": "2 % / 5 % of real photos"},
        "calibration": {"temperature": 0.8, "bias": 0.05, "method": "Platt scaling"},
        "training_data": {
            "dataset": "DFDC crops",
            "licence": "research only",
            "pretrained": "dlib's face network",
            "crops": 9,
        },
        "summary": ["It catches 22 % of DFDC fakes at 5 % FPR."],
        "limitations": ["It has seen one source of face swaps."],
        "evaluations": {
            "utkface_photos": {
                "title": "ordinary photos",
                "metrics": {"count": 50, "flagged_fake": 0.02, "flagged_uncertain": 0.04},
                "by_group": [_OLDER_PEOPLE],
            },
            "sample_frames": {
                "title": "FaceForensics++ frames",
                "in_domain": False,
                "metrics": {"auc": 0.55, "count": 33},
            },
        },
    }
    checkpoint.with_suffix(".json").write_text(json.dumps(card))
    settings.DEEPFAKE_CHECKPOINT = str(checkpoint)
    return checkpoint


def test_the_running_models_card_is_readable_by_integrations(
    api: Client, running_model: Any
) -> None:
    body = api.get(reverse("api:model-card")).json()

    assert body["name"] == "faceproof-test" and body["trained"] and body["installed"]
    assert body["version"] == hashlib.sha256(b"weights").hexdigest()[:12]
    assert (body["flag_threshold"], body["uncertain_threshold"]) == (0.74, 0.67)
    assert (body["network"], body["input_size"], body["crop_top_cut"]) == ("face_resnet", 160, 0.2)
    assert body["threshold_selection"] == "2 % / 5 % of real photos"
    assert body["calibration"] == {"temperature": 0.8, "bias": 0.05, "method": "Platt scaling"}
    assert body["training_data"] == {
        "dataset": "DFDC crops",
        "licence": "research only",
        "pretrained": "dlib's face network",
    }
    assert body["summary"] == ["It catches 22 % of DFDC fakes at 5 % FPR."]
    assert "AUC 0.55 on FaceForensics++ frames" in body["caution"]
    photos, frames = body["evaluations"]
    assert photos["key"] == "utkface_photos" and photos["in_domain"] is True
    assert photos["metrics"]["flagged_fake"] == 0.02
    assert photos["by_group"] == [_OLDER_PEOPLE]
    assert frames["in_domain"] is False and frames["by_group"] == []


def test_a_missing_or_unreadable_card_is_said_plainly(
    api: Client, running_model: Any, settings: Any
) -> None:
    running_model.with_suffix(".json").write_text("{not json")
    body = api.get(reverse("api:model-card")).json()
    assert body["trained"] is False and "not readable JSON" in body["card_problem"]
    # Without a card the site's thresholds decide; the page and the API say the same.
    assert body["flag_threshold"] == settings.FLAG_THRESHOLD

    settings.DEEPFAKE_CHECKPOINT = str(running_model.with_name("absent.pth"))
    body = api.get(reverse("api:model-card")).json()
    assert body["installed"] is False and body["version"] is None and body["name"] == "absent"


def test_the_model_card_needs_a_token() -> None:
    response = Client().get(reverse("api:model-card"))
    assert response.status_code == 401
