"""Accepting videos: the clean copy and poster stored, what is refused (and from what), the
queue and time limits, the page and the API through the one upload gate, ranged playback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from unittest import mock

import av
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from conftest import encode_clip
from deepfake_site.services import api_token_rotate
from detection import services, video_validation
from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory
from detection.validation import RejectionCode, UploadRejected
from detection.video_validation import CONTAINERS, video_container_of

pytestmark = pytest.mark.django_db

WEBM: dict[str, Any] = {"codec": "libvpx-vp9", "container": "webm"}


@pytest.fixture
def uploader() -> User:
    return UserFactory.create(username="uploader")


@pytest.fixture
def sent() -> Any:
    """The analysis messages handed to the broker, photo and video."""
    with (
        mock.patch("detection.tasks.analyze_submission.delay") as photo,
        mock.patch("detection.tasks.analyze_video.apply_async") as video,
    ):
        yield mock.Mock(photo=photo, video=video)


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


def upload(user: User, data: bytes, name: str = "clip.mp4") -> services.SubmissionCreated:
    return services.upload_create(
        uploader=user, upload=SimpleUploadedFile(name, data), filename=name
    )


def audio_only_mp4() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("aac", rate=44_100)
        for index in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 44_100
            frame.pts = index * 1024
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def test_mp4_is_stored_re_muxed_without_metadata_under_a_server_name_with_a_jpeg_poster(
    uploader: User, sent: mock.Mock, private_media_root: Path
) -> None:
    data = encode_clip(
        ["real_frame_1"], seconds_each=2, metadata={"title": "secret-title-42", "comment": "gps"}
    )
    assert b"secret-title-42" in data

    created = upload(uploader, data, name="../../holiday clip.mp4")

    submission = Submission.objects.get(id=created.submission.id)
    assert created.created
    assert submission.media_type == Submission.MediaType.VIDEO
    assert (submission.format, submission.width, submission.height) == ("MP4", 960, 540)
    assert submission.duration_s == pytest.approx(2.0, abs=0.15)
    assert submission.original_filename == "holiday clip.mp4"
    folder = f"submissions/{submission.id}"
    assert submission.image.name == f"{folder}/video.mp4"
    stored = default_storage.open(str(submission.image.name)).read()
    assert b"secret-title-42" not in stored
    with av.open(io.BytesIO(stored)) as container:
        assert "title" not in container.metadata
        assert container.streams.video[0].codec_context.name == "h264"
    for name in (submission.poster.name, submission.thumbnail.name):
        assert default_storage.open(str(name)).read(3) == b"\xff\xd8\xff"
    assert Image.open(default_storage.open(str(submission.poster.name))).size == (960, 540)
    assert max(Image.open(default_storage.open(str(submission.thumbnail.name))).size) <= 320
    assert sorted(stored_files(private_media_root)) == sorted(
        private_media_root / str(name)
        for name in (submission.image.name, submission.poster.name, submission.thumbnail.name)
    )


def test_videos_go_to_their_own_queue_with_time_limits_that_grow_with_the_clip(
    uploader: User, sent: mock.Mock, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        short = upload(uploader, encode_clip(["real_frame_1"], seconds_each=1)).submission
        upload(uploader, encode_clip(["real_frame_3"], seconds_each=3))
    sent.photo.assert_not_called()
    (short_call, longer_call) = sent.video.call_args_list
    assert short_call.args == ((str(short.id),),)
    short_limits = (short_call.kwargs["soft_time_limit"], short_call.kwargs["time_limit"])
    longer_limits = (longer_call.kwargs["soft_time_limit"], longer_call.kwargs["time_limit"])
    assert short_limits[0] < short_limits[1] < settings.CELERY_VISIBILITY_TIMEOUT
    assert longer_limits[0] > short_limits[0] and longer_limits[1] > short_limits[1]
    assert settings.CELERY_TASK_ROUTES["detection.tasks.analyze_video"] == {"queue": "video"}


def test_time_limits_of_the_longest_clips_stay_below_the_visibility_timeout(
    settings: Any,
) -> None:
    soft, hard = services.video_time_limits(duration_s=24 * 3600)
    assert soft < hard == settings.VIDEO_TIME_LIMIT_MAX < settings.CELERY_VISIBILITY_TIMEOUT
    assert hard - soft == settings.CELERY_TASK_TIME_LIMIT - settings.CELERY_TASK_SOFT_TIME_LIMIT
    photo_soft, photo_hard = services.video_time_limits(duration_s=0)
    assert (photo_soft, photo_hard) == (
        settings.CELERY_TASK_SOFT_TIME_LIMIT,
        settings.CELERY_TASK_TIME_LIMIT,
    )


@pytest.mark.parametrize(
    ("clip", "name", "stored_format", "codec"),
    [
        ({"codec": "libvpx-vp9", "container": "webm"}, "clip.webm", "WEBM", "vp9"),
        ({"codec": "libvpx", "container": "webm"}, "clip.webm", "WEBM", "vp8"),
        # QuickTime's H.264 is re-muxed into MP4, which every browser plays.
        ({"container": "mov"}, "clip.mov", "MP4", "h264"),
    ],
    ids=["webm-vp9", "webm-vp8", "mov"],
)
def test_webm_and_mov_are_accepted(
    uploader: User, sent: mock.Mock, clip: dict[str, Any], name: str, stored_format: str, codec: str
) -> None:
    submission = upload(uploader, encode_clip(["real_frame_1"], **clip), name=name).submission
    assert submission.format == stored_format
    with av.open(default_storage.open(str(submission.image.name))) as container:
        assert container.streams.video[0].codec_context.name == codec


def test_a_turned_clip_is_stored_with_its_rotation_and_an_upright_poster(
    uploader: User, sent: mock.Mock, samples_dir: Path
) -> None:
    # Stored as 540 x 960 pixels turned on their side, with a rotation to show them upright.
    submission = upload(uploader, encode_clip(["real_frame_1"], rotation=90)).submission
    with av.open(default_storage.open(str(submission.image.name))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (540, 960)
    assert (submission.width, submission.height) == (960, 540)
    poster = Image.open(default_storage.open(str(submission.poster.name))).convert("L")
    original = Image.open(samples_dir / "real_frame_1.jpg").convert("L")
    difference = np.abs(np.asarray(poster, float) - np.asarray(original, float)).mean()
    assert difference < 12, "the poster shows the picture the right way up"


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 3 // 5]


@pytest.mark.parametrize(
    ("make", "name", "code", "limits"),
    [
        (lambda: b"%PDF-1.7 not a video at all", "clip.mp4", RejectionCode.UNSUPPORTED_FORMAT, {}),
        (
            lambda: encode_clip(["real_frame_1"], codec="mjpeg", container="mov"),
            "clip.mov",
            RejectionCode.UNSUPPORTED_VIDEO_CODEC,
            {},
        ),
        (
            lambda: encode_clip(["real_frame_1"], container="matroska"),
            "clip.mkv",
            RejectionCode.UNSUPPORTED_VIDEO_CODEC,
            {},
        ),
        (audio_only_mp4, "sound.mp4", RejectionCode.NO_VIDEO_STREAM, {}),
        (
            lambda: truncated(encode_clip(["real_frame_1"], seconds_each=2)),
            "clip.mp4",
            RejectionCode.CORRUPT_VIDEO,
            {},
        ),
        (
            lambda: truncated(encode_clip(["real_frame_1"], codec="libvpx-vp9", container="webm")),
            "clip.webm",
            RejectionCode.CORRUPT_VIDEO,
            {},
        ),
        (
            lambda: encode_clip(["real_frame_1"], seconds_each=2),
            "clip.mp4",
            RejectionCode.VIDEO_TOO_LONG,
            {"VIDEO_MAX_SECONDS": 1.5},
        ),
        (
            lambda: encode_clip(["real_frame_1"]),
            "clip.mp4",
            RejectionCode.TOO_MANY_PIXELS,
            {"VIDEO_MAX_PIXELS": 640 * 480},
        ),
        (
            lambda: encode_clip(["real_frame_1"]),
            "clip.mp4",
            RejectionCode.TOO_MANY_FRAMES,
            {"VIDEO_MAX_FRAMES": 9},
        ),
        (
            lambda: encode_clip(["real_frame_1"]),
            "clip.mp4",
            RejectionCode.FILE_TOO_LARGE,
            {"VIDEO_MAX_BYTES": 10_000},
        ),
    ],
    ids=[
        "renamed-document",
        "mjpeg-mov",
        "h264-matroska",
        "audio-only",
        "truncated-mp4",
        "truncated-webm",
        "too-long",
        "frames-too-large",
        "too-many-frames",
        "too-many-bytes",
    ],
)
def test_refused_videos_get_a_code_and_store_nothing(
    uploader: User,
    sent: mock.Mock,
    private_media_root: Path,
    settings: Any,
    make: Any,
    name: str,
    code: str,
    limits: dict[str, float],
) -> None:
    for setting, value in limits.items():
        setattr(settings, setting, value)
    with pytest.raises(UploadRejected) as rejection:
        upload(uploader, make(), name=name)
    assert rejection.value.code == code
    assert rejection.value.message
    assert not Submission.objects.exists()
    assert stored_files(private_media_root) == []
    sent.video.assert_not_called()


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        ({"VIDEO_MAX_SECONDS": 1.5}, RejectionCode.VIDEO_TOO_LONG),
        ({"VIDEO_MAX_PIXELS": 640 * 480}, RejectionCode.TOO_MANY_PIXELS),
        ({"VIDEO_MAX_FRAMES": 9}, RejectionCode.TOO_MANY_FRAMES),
    ],
    ids=["length", "frame-size", "frame-count"],
)
def test_limits_are_checked_from_the_headers_before_anything_is_demuxed_or_decoded(
    uploader: User, sent: mock.Mock, settings: Any, limits: dict[str, float], code: str
) -> None:
    for setting, value in limits.items():
        setattr(settings, setting, value)
    data = encode_clip(["real_frame_1"], seconds_each=2)
    with (
        mock.patch.object(video_validation, "_remux", side_effect=AssertionError("demuxed")),
        mock.patch.object(video_validation, "_poster", side_effect=AssertionError("decoded")),
        pytest.raises(UploadRejected) as rejection,
    ):
        upload(uploader, data)
    assert rejection.value.code == code


def test_still_images_in_the_iso_format_are_not_taken_for_videos() -> None:
    assert video_container_of(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") is None
    assert video_container_of(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") is None
    assert video_container_of(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00") == CONTAINERS["MP4"]
    assert video_container_of(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00") == CONTAINERS["MOV"]
    assert video_container_of(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81") == CONTAINERS["WEBM"]


def test_the_same_clip_again_returns_the_existing_submission(
    uploader: User, sent: mock.Mock
) -> None:
    data = encode_clip(["real_frame_1"])
    first = upload(uploader, data)
    second = upload(uploader, data)
    assert not second.created
    assert second.submission.id == first.submission.id
    assert Submission.objects.count() == 1


def test_a_photo_over_its_limit_is_refused_though_videos_may_be_larger(
    uploader: User, settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 1_000
    buffer = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buffer, format="PNG")
    with pytest.raises(UploadRejected) as rejection:
        upload(uploader, buffer.getvalue(), name="photo.png")
    assert rejection.value.code == RejectionCode.FILE_TOO_LARGE
    assert "0.001 MB" in rejection.value.message


@pytest.fixture
def api(uploader: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=uploader)}")


def test_api_takes_a_video_in_the_same_endpoint_and_answers_202(
    api: Client, sent: mock.Mock
) -> None:
    clip = SimpleUploadedFile("clip.webm", encode_clip(["real_frame_1"], **WEBM))
    response = api.post(reverse("api:submission-list"), {"image": clip})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["media_type"] == "video"
    assert body["status"] == "queued"
    assert body["duration_s"] == pytest.approx(1.0, abs=0.15)
    assert body["video_url"].endswith(reverse("detection:submission-video", args=[body["id"]]))
    assert body["poster_url"].endswith(reverse("detection:submission-poster", args=[body["id"]]))
    assert body["tracks"] == []


def test_api_also_takes_a_clip_in_a_field_named_video(api: Client, sent: mock.Mock) -> None:
    clip = SimpleUploadedFile("clip.mp4", encode_clip(["real_frame_1"]))
    response = api.post(reverse("api:submission-list"), {"video": clip})
    assert response.status_code == 202, response.content


def test_a_batch_mixes_photos_and_videos_in_either_field_with_an_answer_each(
    api: Client, sent: mock.Mock, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 2_000_000  # a photo's limit stays below the clip's
    photo = io.BytesIO()
    Image.effect_noise((64, 64), 64).convert("RGB").save(photo, format="PNG")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            reverse("api:submission-list"),
            {
                "image": [
                    SimpleUploadedFile("photo.png", photo.getvalue()),
                    SimpleUploadedFile("clip.webm", encode_clip(["real_frame_1"], **WEBM)),
                ],
                "video": [
                    SimpleUploadedFile("broken.mp4", truncated(encode_clip(["fake_frame_0"])))
                ],
            },
        )
    assert response.status_code == 207, response.content
    results = {item["filename"]: item for item in response.json()["results"]}
    assert results["photo.png"]["outcome"] == "accepted"
    assert results["clip.webm"]["outcome"] == "accepted"
    assert results["broken.mp4"]["code"] == RejectionCode.CORRUPT_VIDEO
    kinds = dict(Submission.objects.values_list("original_filename", "media_type"))
    assert kinds == {"photo.png": "image", "clip.webm": "video"}
    assert (sent.photo.call_count, sent.video.call_count) == (1, 1)


def test_api_answers_400_with_a_code_for_a_file_renamed_mp4_that_is_not_a_video(
    api: Client, sent: mock.Mock, private_media_root: Path
) -> None:
    fake = SimpleUploadedFile("clip.mp4", b"PK\x03\x04 a zip archive, renamed", "video/mp4")
    response = api.post(reverse("api:submission-list"), {"image": fake})
    assert response.status_code == 400
    assert response.json()["code"] == RejectionCode.UNSUPPORTED_FORMAT
    assert "MP4, WebM or MOV video" in response.json()["detail"]
    assert stored_files(private_media_root) == []


def test_api_answers_400_with_a_code_for_a_damaged_video(api: Client, sent: mock.Mock) -> None:
    damaged = SimpleUploadedFile("clip.mp4", truncated(encode_clip(["real_frame_1"])))
    response = api.post(reverse("api:submission-list"), {"image": damaged})
    assert response.status_code == 400
    assert response.json()["code"] == RejectionCode.CORRUPT_VIDEO


def test_upload_page_takes_a_video_and_its_page_shows_the_progress(
    client: Client, uploader: User, sent: mock.Mock
) -> None:
    client.force_login(uploader)
    page = client.get(reverse("detection:upload")).content.decode()
    assert "video/mp4" in page and "video/webm" in page
    clip = SimpleUploadedFile("clip.mp4", encode_clip(["real_frame_1"], seconds_each=2))
    response = client.post(reverse("detection:upload"), {"image": clip})
    assert response.status_code == 302
    submission = Submission.objects.get()
    Submission.objects.filter(id=submission.id).update(
        status=Submission.Status.PROCESSING, frames_total=4, frames_analysed=3
    )
    fragment = client.get(reverse("detection:submission-status", args=[submission.id]))
    text = fragment.content.decode()
    assert "Analysing the video" in text
    assert "Frames analysed: <strong>3 of 4</strong>" in text
    assert 'max="4" value="3"' in text


@pytest.fixture
def stored_video(uploader: User) -> Submission:
    data = encode_clip(["real_frame_1"])
    return SubmissionFactory.create(
        uploader=uploader,
        media_type=Submission.MediaType.VIDEO,
        format="MP4",
        image=default_storage.save("videos/clip.mp4", ContentFile(data)),
        byte_size=len(data),
    )


def test_the_video_is_served_in_the_byte_ranges_asked_for(
    client: Client, uploader: User, stored_video: Submission
) -> None:
    client.force_login(uploader)
    url = reverse("detection:submission-video", args=[stored_video.id])
    data = default_storage.open(str(stored_video.image.name)).read()
    size = len(data)

    whole = client.get(url)
    assert whole.status_code == 200
    assert whole["Content-Type"] == "video/mp4"
    assert whole["Accept-Ranges"] == "bytes"
    assert whole["X-Content-Type-Options"] == "nosniff"
    assert whole.getvalue() == data

    for header, first, last in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, size - 1),
        ("bytes=-50", size - 50, size - 1),
        (f"bytes=10-{size + 1000}", 10, size - 1),
    ]:
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert part["Content-Length"] == str(last - first + 1)
        assert part.getvalue() == data[first : last + 1]

    beyond = client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{size}"


def test_only_those_who_may_see_the_submission_get_its_video_and_poster(
    client: Client, stored_video: Submission
) -> None:
    client.force_login(UserFactory.create(username="stranger"))
    for name in ("detection:submission-video", "detection:submission-poster"):
        assert client.get(reverse(name, args=[stored_video.id])).status_code == 404


def test_a_photo_has_no_video(client: Client, uploader: User) -> None:
    client.force_login(uploader)
    photo = SubmissionFactory.create(uploader=uploader)
    assert client.get(reverse("detection:submission-video", args=[photo.id])).status_code == 404


def test_a_clip_larger_than_the_photo_limit_is_read_from_its_temporary_file(
    client: Client, uploader: User, sent: mock.Mock, settings: Any
) -> None:
    # Django spools larger bodies to a temporary file; the clip is probed and re-muxed from
    # there, and only the video limit applies to it.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.UPLOAD_MAX_BYTES = 10_000
    client.force_login(uploader)
    data = encode_clip(["real_frame_1"], seconds_each=2)
    assert len(data) > settings.UPLOAD_MAX_BYTES
    response = client.post(
        reverse("detection:upload"), {"image": SimpleUploadedFile("clip.mp4", data)}
    )
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.byte_size == len(data)
    assert submission.duration_s == pytest.approx(2.0, abs=0.15)
