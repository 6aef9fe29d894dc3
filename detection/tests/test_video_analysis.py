"""A video's analysis in-process: tracks stored once, progress, failure, the API and pages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from conftest import assert_no_orphaned_files, encode_clip
from deepfake_site.services import api_token_rotate
from detection import services
from detection.models import Face, Submission, Track
from detection.tests.factories import SubmissionFactory, UserFactory
from moderation.models import ReviewCase
from moderation.services import review_case_open
from moderation.tests.factories import ModeratorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_model(settings: Any, demo_checkpoint: Path) -> None:
    settings.DEEPFAKE_CHECKPOINT = str(demo_checkpoint)
    settings.DEEPFAKE_RUNTIME = "torch"


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with (
        mock.patch("detection.tasks.analyze_submission.delay"),
        mock.patch("detection.tasks.analyze_video.apply_async") as video,
    ):
        yield video


@pytest.fixture
def owner() -> User:
    return UserFactory.create(username="owner")


def uploaded_video(owner: User, frames: list[str | Image.Image], **clip: Any) -> Submission:
    data = encode_clip(frames, **clip)
    name = "clip.webm" if clip.get("container") == "webm" else "clip.mp4"
    return services.upload_create(
        uploader=owner, upload=SimpleUploadedFile(name, data), filename=name
    ).submission


def analyse(submission: Submission, task_id: str = "task-1") -> Submission:
    services.analysis_run(submission_id=submission.id, task_id=task_id, worker="test@host")
    return Submission.objects.get(id=submission.id)


def test_a_clip_is_analysed_into_tracks_with_a_timeline_point_per_sampled_frame(
    owner: User,
) -> None:
    submission = analyse(uploaded_video(owner, ["real_frame_1"], seconds_each=2))

    assert submission.status == Submission.Status.DONE, submission.failure_reason
    assert (submission.frames_analysed, submission.frames_total) == (4, 4)
    assert submission.duration_s == pytest.approx(2.0, abs=0.15)
    (track,) = Track.objects.filter(submission=submission)
    assert track.frames == len(track.timeline) == submission.frames_analysed
    assert [round(t, 1) for t, _ in track.timeline] == [0.2, 0.7, 1.2, 1.7]
    assert track.worst_frame_s in [t for t, _ in track.timeline]
    assert track.face.index == track.index == 1
    assert track.face.fake_probability == pytest.approx(max(p for _, p in track.timeline))
    assert submission.fake_probability == pytest.approx(track.fake_probability)
    assert submission.verdict in {"fake", "uncertain", "real"}
    assert track.face.heatmap.open().read(8).startswith(b"\x89PNG")
    assert default_storage.open(str(submission.overlay.name)).read(3) == b"\xff\xd8\xff"
    assert {"decode", "detect", "classify", "total"} <= set(submission.timings_ms)


def test_analysing_again_replaces_the_tracks_instead_of_adding(owner: User) -> None:
    submission = analyse(
        uploaded_video(owner, ["real_frame_1", "real_frame_3", "real_frame_1"], seconds_each=1)
    )
    first = list(Track.objects.filter(submission=submission).values_list("index", "frames"))
    assert first == [(1, 4), (2, 2)]
    services.submission_reanalyze(submission=submission)
    submission = analyse(submission, task_id="task-2")
    assert list(Track.objects.filter(submission=submission).values_list("index", "frames")) == first
    assert Face.objects.filter(submission=submission).count() == 2
    assert_no_orphaned_files([submission.id])


def test_a_clip_without_faces_ends_no_face(owner: User) -> None:
    blank = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    submission = analyse(uploaded_video(owner, [blank], seconds_each=2))
    assert submission.status == Submission.Status.NO_FACE
    assert submission.verdict == ""
    assert submission.frames_analysed == 4
    assert not Track.objects.filter(submission=submission).exists()


def test_progress_is_written_while_the_frames_are_analysed(owner: User) -> None:
    submission = uploaded_video(owner, ["real_frame_1"], seconds_each=2)
    seen: list[tuple[int | None, int | None, str]] = []
    original_analysis = services._analyze_video

    def watching(video: Submission, *, task_id: str) -> Any:
        from detection.ml import video_analysis

        original = video_analysis._VideoAnalysis._detect

        def detect(self: Any, *args: Any) -> None:
            row = Submission.objects.get(id=video.id)
            seen.append((row.frames_analysed, row.frames_total, row.status))
            original(self, *args)

        with mock.patch.object(video_analysis._VideoAnalysis, "_detect", detect):
            return original_analysis(video, task_id=task_id)

    with (
        mock.patch.object(services, "_analyze_video", watching),
        mock.patch.object(services, "_PROGRESS_INTERVAL_SECONDS", 0),
    ):
        analyse(submission)
    assert seen == [(n, 4, "processing") for n in range(4)]


def test_a_claim_taken_over_meanwhile_stops_the_analysis_and_stores_nothing(
    owner: User,
) -> None:
    submission = uploaded_video(owner, ["real_frame_1"], seconds_each=2)
    original = services._analyze_video

    def taken_over(video: Submission, *, task_id: str) -> Any:
        Submission.objects.filter(id=video.id).update(claimed_by_task="another-task")
        return original(video, task_id=task_id)

    with mock.patch.object(services, "_analyze_video", taken_over):
        submission = analyse(submission)
    assert submission.claimed_by_task == "another-task"
    assert submission.status == Submission.Status.PROCESSING
    assert not Track.objects.filter(submission=submission).exists()


def test_a_stored_clip_that_cannot_be_decoded_fails_at_once(owner: User) -> None:
    submission = uploaded_video(owner, ["real_frame_1"])
    with default_storage.open(str(submission.image.name), "wb") as stored:
        stored.write(b"\x00\x00\x00\x18ftypisom garbage")
    submission = analyse(submission)
    assert submission.status == Submission.Status.FAILED
    assert submission.attempts == 1
    assert "video could not be decoded" in submission.failure_reason


def test_a_poison_clip_fails_after_the_attempt_cap(owner: User, settings: Any) -> None:
    settings.ANALYSIS_MAX_ATTEMPTS = 2
    submission = uploaded_video(owner, ["real_frame_1"])
    # A clip that runs past its time limit every time.
    with mock.patch.object(services, "_analyze_video", side_effect=SoftTimeLimitExceeded()):
        with pytest.raises(services.RetryableAnalysisError):
            analyse(submission)
        submission = analyse(submission, task_id="task-2")
    assert submission.status == Submission.Status.FAILED
    assert submission.attempts == 2
    assert "ran past its time limit on each of its 2 attempts" in submission.failure_reason
    # A worker killed outright by a clip (no exception to catch) counts the same way.
    Submission.objects.filter(id=submission.id).update(
        status=Submission.Status.PROCESSING, claimed_by_task="task-3", attempts=2
    )
    submission = analyse(submission, task_id="task-3")
    assert submission.status == Submission.Status.FAILED
    assert "the video may crash the analyser" in submission.failure_reason


def test_a_long_video_that_shows_signs_of_life_is_not_taken_for_abandoned(
    settings: Any,
) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_AFTER_SECONDS + 60)
    alive = SubmissionFactory.create(
        status=Submission.Status.PROCESSING,
        media_type=Submission.MediaType.VIDEO,
        claimed_by_task="busy",
        started_at=long_ago,
        heartbeat_at=timezone.now(),
    )
    silent = SubmissionFactory.create(
        status=Submission.Status.PROCESSING,
        media_type=Submission.MediaType.VIDEO,
        claimed_by_task="dead",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    assert services.submissions_requeue_stuck() == [silent.id]
    assert not services._claim(submission_id=alive.id, task_id="other", worker="w@h")
    assert services._claim(submission_id=silent.id, task_id="other", worker="w@h")


@pytest.fixture
def analysed(owner: User) -> Submission:
    return analyse(
        uploaded_video(
            owner,
            ["real_frame_1", "real_frame_3", "real_frame_1"],
            seconds_each=1,
            codec="libvpx-vp9",
            container="webm",
        )
    )


def test_api_shows_a_videos_tracks_and_only_the_owner_gets_their_heatmaps(
    owner: User, analysed: Submission
) -> None:
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=owner)}")
    body = api.get(reverse("api:submission-detail", args=[analysed.id])).json()
    assert body["media_type"] == "video"
    assert body["format"] == "WEBM"
    assert body["frames_analysed"] == body["frames_total"] == 6
    assert body["duration_s"] == pytest.approx(3.0, abs=0.15)
    first, second = body["tracks"]
    assert first["index"] == 1 and first["frames"] == 4 and first["judged"] is True
    assert len(first["timeline"]) == first["frames"]
    assert all(len(point) == 2 for point in first["timeline"])
    assert first["worst_frame_s"] in [t for t, _ in first["timeline"]]
    assert second["judged"] is False
    assert len(body["faces"]) == 2
    heatmap = api.get(first["heatmap_url"])
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    assert api.get(first["crop_url"]).status_code == 200

    stranger = UserFactory.create(username="stranger")
    other = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=stranger)}")
    assert other.get(first["heatmap_url"]).status_code == 404
    assert other.get(body["video_url"]).status_code == 404


def test_a_photo_keeps_its_shape_in_the_api(owner: User) -> None:
    from detection.tests.factories import make_analysed

    photo = make_analysed(SubmissionFactory.create(uploader=owner))
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=owner)}")
    body = api.get(reverse("api:submission-detail", args=[photo.id])).json()
    assert body["media_type"] == "image"
    assert (body["duration_s"], body["frames_analysed"], body["video_url"]) == (None, None, None)
    assert body["tracks"] == []
    assert body["faces"][0]["index"] == 1 and body["overlay_url"]


def test_the_result_page_plays_the_video_above_the_timeline_chart(
    client: Client, owner: User, analysed: Submission
) -> None:
    client.force_login(owner)
    page = client.get(reverse("detection:submission-detail", args=[analysed.id]))
    text = page.content.decode()
    video_url = reverse("detection:submission-video", args=[analysed.id])
    assert f'src="{video_url}"' in text
    assert text.index("<video") < text.index('class="chart timeline-chart"')
    # The first person's line breaks while the second is on screen: three runs in all.
    assert text.count("<polyline") == 3
    assert text.count('data-track="1"') == 2
    assert 'id="track-1"' in text and 'id="track-2"' in text
    assert "seen on too few frames" in text
    assert "js/video.js" in text
    overlay = client.get(reverse("detection:submission-overlay", args=[analysed.id]))
    assert overlay["Content-Type"] == "image/jpeg"
    assert f'href="{overlay.request["PATH_INFO"]}" id="overlay-link"' in text


def test_the_case_page_of_a_flagged_video_shows_it_and_decisions_work(
    client: Client, owner: User
) -> None:
    submission = analyse(uploaded_video(owner, ["real_frame_1"], seconds_each=2))
    # Whatever the untrained model said, the case is about this video.
    Submission.objects.filter(id=submission.id).update(verdict=Submission.Verdict.FAKE)
    submission.refresh_from_db()
    case = review_case_open(submission=submission)
    assert case is not None and case.face_count == 1
    client.force_login(ModeratorFactory.create())

    page = client.get(reverse("moderation:case-detail", args=[case.pk])).content.decode()
    assert 'class="video-player blurrable"' in page and "timeline-chart" in page
    assert "People (1)" in page and 'id="track-1"' in page
    response = client.post(
        reverse("moderation:case-decide", args=[case.pk]),
        {"decision": "confirm", "note": "Blending seams along the jaw."},
    )
    assert response.status_code == 302
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.CONFIRMED


def test_the_timeline_chart_places_each_point_and_breaks_a_line_at_an_absence() -> None:
    from detection.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, timeline_chart

    track = Track(index=1, timeline=[[0.0, 0.0], [0.5, 1.0], [3.0, 0.5]])
    chart = str(
        timeline_chart(
            [track],
            duration_s=4.0,
            sample_interval_s=0.5,
            flag_threshold=0.8,
            uncertain_threshold=None,
        )
    )
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom, top = TOP + plot_height, TOP
    assert f'points="{LEFT:.1f},{bottom:.1f} {LEFT + plot_width / 8:.1f},{top:.1f}"' in chart
    assert f'points="{LEFT + plot_width * 3 / 4:.1f},{TOP + plot_height / 2:.1f}"' in chart
    assert f'data-duration="4.000" data-plot-left="{LEFT}" data-plot-width="{plot_width}"' in chart
    assert chart.count("stroke-dasharray") == 1, "only the thresholds that are set"
    coinciding = str(
        timeline_chart(
            [track],
            duration_s=4.0,
            sample_interval_s=0.5,
            flag_threshold=0.0,
            uncertain_threshold=0.0,
        )
    )
    assert coinciding.count("stroke-dasharray") == 1 and ">uncertain<" not in coinciding
    assert "<title>Person 1 at 3.0 s: P(fake) 0.500</title>" in chart
