"""The uploader's pages: upload form, live status, results, list, token, private media."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from deepfake_site.services import api_token_rotate
from detection.ml.card import Evaluation, ModelCard, write_card
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory, make_analysed

pytestmark = pytest.mark.django_db


def jpeg(size: tuple[int, int] = (64, 48), color: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def owner_client(client: Client) -> Client:
    client.force_login(UserFactory.create(username="owner"))
    return client


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


def test_upload_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get(reverse("detection:upload"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_upload_redirects_to_the_live_status_page(owner_client: Client) -> None:
    response = owner_client.post(
        reverse("detection:upload"),
        {"image": SimpleUploadedFile("me.jpg", jpeg(), content_type="image/jpeg")},
    )
    submission = Submission.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("detection:submission-detail", args=[submission.id])
    page = owner_client.get(response["Location"]).content.decode()
    assert "Waiting in the queue" in page
    assert reverse("detection:submission-status", args=[submission.id]) in page
    assert 'hx-trigger="every' in page


def test_rejected_file_shows_its_error_next_to_the_form(owner_client: Client) -> None:
    response = owner_client.post(
        reverse("detection:upload"),
        {
            "image": SimpleUploadedFile(
                "doc.jpg", b"%PDF-1.4 not an image", content_type="image/jpeg"
            )
        },
    )
    assert response.status_code == 400
    assert "not a JPEG, PNG or WebP image" in response.content.decode()
    assert not Submission.objects.exists()


def test_file_over_the_byte_limit_shows_the_limit(owner_client: Client, settings: Any) -> None:
    settings.UPLOAD_MAX_BYTES = 2_000
    response = owner_client.post(
        reverse("detection:upload"),
        {"image": SimpleUploadedFile("big.jpg", jpeg((600, 600), "red") + b"\0" * 5000)},
    )
    assert response.status_code == 413
    assert "larger than the 0.002 MB limit" in response.content.decode()
    assert not Submission.objects.exists()


def test_missing_file_asks_for_one(owner_client: Client) -> None:
    response = owner_client.post(reverse("detection:upload"), {})
    assert response.status_code == 400
    assert "Choose a photo or a video to upload." in response.content.decode()


def test_duplicate_upload_opens_the_existing_submission(owner_client: Client) -> None:
    data = jpeg()
    first = owner_client.post(
        reverse("detection:upload"), {"image": SimpleUploadedFile("a.jpg", data)}
    )
    second = owner_client.post(
        reverse("detection:upload"), {"image": SimpleUploadedFile("b.jpg", data)}
    )
    assert first["Location"] == second["Location"]
    assert Submission.objects.count() == 1


def test_status_fragment_shows_the_queue_position(owner_client: Client) -> None:
    owner = User.objects.get(username="owner")
    SubmissionFactory.create_batch(2)
    mine = SubmissionFactory.create(uploader=owner)
    fragment = owner_client.get(reverse("detection:submission-status", args=[mine.id])).content
    assert b"2 photos ahead of yours" in fragment


def test_finished_analysis_shows_faces_heatmaps_bars_and_the_untrained_warning(
    owner_client: Client,
) -> None:
    submission = make_analysed(
        SubmissionFactory.create(uploader=User.objects.get(username="owner")),
        fake_probabilities=(0.91, 0.12),
    )
    page = owner_client.get(
        reverse("detection:submission-detail", args=[submission.id])
    ).content.decode()
    assert "Likely manipulated" in page
    assert reverse("detection:face-heatmap", args=[submission.id, 2]) in page
    assert reverse("detection:submission-overlay", args=[submission.id]) in page
    assert "P(fake) <strong>0.120</strong>" in page
    assert "P(real)" not in page, "one score, P(fake), everywhere"
    assert "Untrained model" in page
    assert "hx-trigger" not in page, "a final result stops polling"


def test_no_face_and_failed_are_explained(owner_client: Client) -> None:
    owner = User.objects.get(username="owner")
    no_face = make_analysed(SubmissionFactory.create(uploader=owner), fake_probabilities=())
    failed = SubmissionFactory.create(
        uploader=owner, status="failed", failure_reason="The stored image could not be decoded."
    )
    assert (
        b"No face found"
        in owner_client.get(reverse("detection:submission-detail", args=[no_face.id])).content
    )
    page = owner_client.get(reverse("detection:submission-detail", args=[failed.id])).content
    assert b"The analysis failed" in page and b"could not be decoded" in page


def test_another_uploader_gets_404_on_the_page_and_every_media_file(client: Client) -> None:
    submission = make_analysed(SubmissionFactory.create())
    client.force_login(UserFactory.create(username="stranger"))
    urls = [
        reverse("detection:submission-detail", args=[submission.id]),
        reverse("detection:submission-status", args=[submission.id]),
        reverse("detection:submission-image", args=[submission.id]),
        reverse("detection:submission-thumbnail", args=[submission.id]),
        reverse("detection:submission-overlay", args=[submission.id]),
        reverse("detection:face-crop", args=[submission.id, 1]),
        reverse("detection:face-heatmap", args=[submission.id, 1]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url


def test_owner_moderator_and_staff_get_media_with_nosniff_and_explicit_type(client: Client) -> None:
    submission = make_analysed(SubmissionFactory.create())
    moderator = UserFactory.create(username="mod")
    moderator.groups.add(Group.objects.get(name="moderators"))
    url = reverse("detection:face-heatmap", args=[submission.id, 1])
    for user in (
        submission.uploader,
        moderator,
        UserFactory.create(username="boss", is_staff=True),
    ):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200, user.username
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response.getvalue().startswith(b"\x89PNG")


def test_anonymous_media_request_goes_to_log_in(client: Client) -> None:
    submission = SubmissionFactory.create()
    response = client.get(reverse("detection:submission-image", args=[submission.id]))
    assert response.status_code == 302


MEDIA = [
    ("detection:submission-image", ()),
    ("detection:submission-thumbnail", ()),
    ("detection:submission-overlay", ()),
    ("detection:face-crop", (1,)),
    ("detection:face-heatmap", (1,)),
]


def media_urls(submission: Submission) -> list[str]:
    return [reverse(name, args=[submission.id, *extra]) for name, extra in MEDIA]


@pytest.mark.parametrize(
    "authorization", ["Token not-a-key", "Token " + "0" * 64, "Token", "Bearer abc"]
)
def test_media_requests_with_a_bad_token_answer_401_in_json(authorization: str) -> None:
    submission = make_analysed(SubmissionFactory.create())
    api = Client(HTTP_AUTHORIZATION=authorization)
    for url in media_urls(submission):
        response = api.get(url)
        assert response.status_code == 401, url
        assert response["Content-Type"] == "application/json"
        assert response["WWW-Authenticate"] == "Token"
        body = response.json()
        assert set(body) == {"code", "detail"} and body["code"] == "authentication_failed"


def test_media_answer_head_as_they_answer_get(client: Client) -> None:
    submission = make_analysed(SubmissionFactory.create())
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=submission.uploader)}")
    client.force_login(submission.uploader)
    for browser in (client, api):
        for url in media_urls(submission):
            got = browser.get(url)
            head = browser.head(url)
            assert head.status_code == got.status_code == 200, url
            assert head["Content-Type"] == got["Content-Type"] == "image/png"
            assert head["X-Content-Type-Options"] == "nosniff"
            assert head["Content-Length"] == got["Content-Length"]


def test_my_submissions_lists_only_mine_filtered_and_paginated(owner_client: Client) -> None:
    owner = User.objects.get(username="owner")
    for _ in range(22):
        make_analysed(
            SubmissionFactory.create(uploader=owner), fake_probabilities=(0.1,), verdict="real"
        )
    make_analysed(SubmissionFactory.create(uploader=owner, original_filename="suspect.png"))
    SubmissionFactory.create(original_filename="someone-elses.png")
    url = reverse("detection:submission-list")
    first_page = owner_client.get(url).content.decode()
    assert "someone-elses.png" not in first_page
    assert "Page 1 of 2" in first_page
    fakes = owner_client.get(url, {"verdict": "fake"}).content.decode()
    assert "suspect.png" in fakes and "Page 1 of 1" in fakes
    assert "No submissions match" in owner_client.get(url, {"status": "failed"}).content.decode()


def test_api_token_page_creates_then_rotates_the_token(owner_client: Client) -> None:
    url = reverse("detection:api-token")
    assert b"no token yet" in owner_client.get(url).content
    first = owner_client.post(url).context["new_key"]
    second = owner_client.post(url).context["new_key"]
    assert first and second and first != second
    api = Client(HTTP_AUTHORIZATION=f"Token {second}")
    assert api.get(reverse("api:submission-list")).status_code == 200
    assert (
        Client(HTTP_AUTHORIZATION=f"Token {first}").get(reverse("api:submission-list")).status_code
        == 401
    )


@pytest.fixture
def model_card_with(settings: Any, tmp_path: Path) -> Callable[[float], None]:
    """Make the running model's card report this AUC on data unlike its training data."""

    def write(auc: float) -> None:
        checkpoint = tmp_path / "model.pth"
        checkpoint.write_bytes(b"weights")
        card = ModelCard(
            name="test-model",
            trained=True,
            evaluations={
                "frames": Evaluation(
                    title="FaceForensics++ video frames", metrics={"auc": auc}, in_domain=False
                )
            },
        )
        write_card(checkpoint, card)
        settings.DEEPFAKE_CHECKPOINT = str(checkpoint)

    return write


def test_result_words_say_what_the_model_can_and_cannot_tell(
    owner_client: Client, model_card_with: Callable[[float], None]
) -> None:
    model_card_with(0.62)
    submission = make_analysed(
        SubmissionFactory.create(uploader=User.objects.get(username="owner")),
        fake_probabilities=(0.2,),
        verdict="real",
        flag_threshold=0.81,
        uncertain_threshold=0.66,
    )
    page = owner_client.get(reverse("detection:submission-detail", args=[submission.id]))
    text = page.content.decode()
    assert "No manipulation found" in text and "authentic" not in text.lower().replace(
        "not that the photo is authentic", ""
    )
    assert "likely manipulated at P(fake) ≥ 0.81, uncertain at ≥ 0.66" in text
    assert "AUC 0.62 on FaceForensics++ video frames" in text, "the card's own weakness is shown"


def test_no_caution_when_the_card_measures_the_model_well(
    owner_client: Client, model_card_with: Callable[[float], None]
) -> None:
    model_card_with(0.93)
    submission = make_analysed(
        SubmissionFactory.create(uploader=User.objects.get(username="owner")),
        fake_probabilities=(0.2,),
        verdict="real",
    )
    page = owner_client.get(reverse("detection:submission-detail", args=[submission.id]))
    assert 'id="model-caution"' not in page.content.decode()


def test_a_face_too_poor_to_judge_says_so_and_why(owner_client: Client) -> None:
    submission = make_analysed(
        SubmissionFactory.create(uploader=User.objects.get(username="owner")),
        fake_probabilities=(0.97,),
        verdict="inconclusive",
    )
    submission.faces.update(quality="low", quality_reasons=["too_small", "blurry"], size_px=31)
    Submission.objects.filter(id=submission.id).update(fake_probability=None)
    page = owner_client.get(reverse("detection:submission-detail", args=[submission.id]))
    text = page.content.decode()
    assert "Verdict: <span" in text and "Inconclusive" in text
    assert "Too poor to judge" in text
    assert "Not used for the verdict: too small, blurred." in text
    assert "31 px wide" in text


def test_a_long_first_analysis_says_the_model_is_being_prepared(owner_client: Client) -> None:
    owner = User.objects.get(username="owner")
    started = timezone.now() - timedelta(seconds=20)
    slow = SubmissionFactory.create(uploader=owner, status="processing", started_at=started)
    quick = SubmissionFactory.create(uploader=owner, status="processing", started_at=timezone.now())
    status = "detection:submission-status"
    assert b"Preparing the model" in owner_client.get(reverse(status, args=[slow.id])).content
    assert b"Preparing the model" not in owner_client.get(reverse(status, args=[quick.id])).content
