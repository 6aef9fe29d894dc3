"""Fixtures shared by every app's tests: real servers, real worker processes, private media,
the committed test frames (and clips made of them), and an untrained demo model built once
per run.

torch loads inside the model fixtures, not at import, so test modules that never touch the
pipeline collect quickly.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection
from PIL import Image

if TYPE_CHECKING:
    import torch

    from detection.ml.pipeline import Analyzer

REPO_ROOT = Path(__file__).resolve().parent
# Fourteen FaceForensics++ frames at 960x540, committed (see their NOTICE): the tests need no
# data from outside the repository.
TEST_FRAMES = REPO_ROOT / "testdata" / "frames"
# Four real frames give enough face crops to recalibrate BatchNorm in about a second.
_CALIBRATION_FRAMES = [f"real_frame_{index}.jpg" for index in (1, 3, 10, 12)]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR", REPO_ROOT / "test-artifacts" / time.strftime("%Y%m%d-%H%M%S"))
)


def screenshot_folder() -> Path:
    """Where browser tests save what they saw; the run prints it at the end."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir():
        count = len(list(SCREENSHOTS.glob("*.png")))
        terminalreporter.write_line(f"Browser screenshots ({count}): {SCREENSHOTS}")


def require_service(available: bool, what: str) -> None:
    """Skip when a server is missing on a developer machine; fail in CI, which must have it."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable, and CI must test against it")
    pytest.skip(f"{what} is not reachable (CI starts it; see .ci/run)")


def redis_is_up(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_url() -> str:
    require_service(redis_is_up(), f"Redis at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture(scope="session", autouse=True)
def plain_http() -> Iterator[None]:
    """Test servers speak plain HTTP; the production defaults redirect to HTTPS.

    Session-wide, because SecurityMiddleware reads these settings once, when the session's
    live server builds its handler: a per-test override would come too late for it.
    """
    from django.test import override_settings

    with override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    ):
        yield


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported classifier graphs go to a folder of this run, for the workers it starts too."""
    from django.test import override_settings

    folder = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch, override_settings(DEEPFAKE_MODEL_CACHE=folder):
        patch.setenv("DEEPFAKE_MODEL_CACHE", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def fast_hashing_and_fresh_counters(settings: Any) -> None:
    """Fast password hashing and rate-limit counters at zero."""
    from django.core.cache import cache

    # Password hashing is deliberately slow; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()


# Quality-check and double-review sampling are random; tests that are about them set the
# rates to 1, every other test runs without them (here and in the servers tests start).
NO_SAMPLING = {"QA_SAMPLE_RATE": "0", "DOUBLE_REVIEW_RATE": "0"}


@pytest.fixture(autouse=True)
def no_sampling(settings: Any) -> None:
    settings.QA_SAMPLE_RATE = 0
    settings.DOUBLE_REVIEW_RATE = 0


@pytest.fixture(autouse=True)
def private_media_root(settings: Any, tmp_path: Path) -> Path:
    """Every test writes uploads into its own folder, never into var/media."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    return media


def assert_no_orphaned_files(submission_ids: list[uuid.UUID]) -> None:
    """Each submission's folder holds exactly the files its rows name: a retried analysis
    replaced its faces' crops and heatmaps instead of leaving the old ones behind."""
    from django.core.files.storage import default_storage

    from detection.models import Submission

    for submission in Submission.objects.filter(id__in=submission_ids).prefetch_related("faces"):
        named = {
            submission.image.name,
            submission.thumbnail.name,
            submission.poster.name,
            submission.overlay.name,
        }
        named |= {
            name for face in submission.faces.all() for name in (face.crop.name, face.heatmap.name)
        }
        folder = Path(default_storage.path(f"submissions/{submission.id}"))
        stored = {
            str(path.relative_to(default_storage.path("")))
            for path in folder.rglob("*")
            if path.is_file()
        }
        assert stored == {name for name in named if name}, submission.id


def database_url_for_current_connection() -> str:
    """The URL of the database the tests use (the test database once it is set up)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{credentials}{host}/{db['NAME']}"


class WorkerProcess:
    """A `celery worker` in its own process, started the way the Procfile starts it."""

    def __init__(
        self, env: dict[str, str], log_path: Path, queues: str, concurrency: int, hostname: str
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.concurrency = concurrency
        self.hostname = hostname
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.log_path.write_text("")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "deepfake_site",
                "worker",
                "-Q",
                self.queues,
                "--concurrency",
                str(self.concurrency),
                "--hostname",
                self.hostname,
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "--logfile",
                str(self.log_path),
            ],
            cwd=REPO_ROOT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log_path.read_text()}")

    def child_pids(self) -> list[int]:
        assert self.process is not None
        result = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in result.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def start_worker(tmp_path: Path, settings: Any) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real Celery workers on the test database; every one is stopped at teardown."""
    workers: list[WorkerProcess] = []

    def start(
        *,
        queues: str = "celery",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        hostname: str | None = None,
    ) -> WorkerProcess:
        """`hostname`: the same name again is the same worker restarted."""
        worker_env = {
            **os.environ,
            **NO_SAMPLING,
            "DATABASE_URL": database_url_for_current_connection(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        worker = WorkerProcess(
            worker_env,
            tmp_path / f"worker-{len(workers)}.log",
            queues,
            concurrency,
            hostname or f"test-{uuid.uuid4().hex[:8]}@localhost",
        )
        workers.append(worker)
        worker.start()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def start_gunicorn() -> Iterator[Callable[[dict[str, str]], str]]:
    """Start gunicorn on a free port with these environment overrides; "host:port" back."""
    servers: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], workers: int = 1, threads: int = 1) -> str:
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "deepfake_site.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--log-level",
                "warning",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, **NO_SAMPLING, "SECURE_SSL_REDIRECT": "false", **env},
        )
        servers.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"127.0.0.1:{port}"
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("gunicorn exited at start") from None
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start in 30 s")

    yield start
    for server in servers:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The committed test frames: real_frame_N.jpg and fake_frame_N.jpg."""
    return TEST_FRAMES


@pytest.fixture(scope="session")
def sample_image(samples_dir: Path) -> Callable[[str], Image.Image]:
    """Open a test frame as RGB by name, e.g. sample_image("fake_frame_0")."""

    def open_sample(name: str) -> Image.Image:
        return Image.open(samples_dir / f"{name}.jpg").convert("RGB")

    return open_sample


# Encoder settings that make a test clip in a fraction of a second.
_FAST_ENCODERS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "ultrafast"},
    "libvpx": {"deadline": "realtime", "cpu-used": "16"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


def encode_clip(
    frames: Sequence[str | Image.Image],
    *,
    seconds_each: float = 1.0,
    fps: int = 10,
    codec: str = "libx264",
    container: str = "mp4",
    rotation: int = 0,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """A clip of test frames (by name) or pictures, each on screen for `seconds_each`,
    panning slowly (two pixels a frame) so that no two frames are identical; made with PyAV.

    `rotation`: the stored pixels are turned clockwise by it and the stream says to turn
    them back (counter-clockwise), as phones record portrait clips.
    """
    import av

    turns = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180}
    pictures = [
        frame if isinstance(frame, Image.Image) else Image.open(TEST_FRAMES / f"{frame}.jpg")
        for frame in frames
    ]
    pictures = [picture.convert("RGB") for picture in pictures]
    width, height = pictures[0].size
    per_picture = round(seconds_each * fps)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        output.metadata.update(metadata or {})
        stream = output.add_stream(codec, rate=fps, options=_FAST_ENCODERS.get(codec, {}))
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = (height, width) if rotation in (90, 270) else (width, height)
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for picture in pictures:
            for step in range(per_picture):
                shifted = picture.crop((2 * step, 0, width + 2 * step, height))
                if rotation:
                    shifted = shifted.transpose(turns[rotation])
                for packet in stream.encode(av.VideoFrame.from_image(shifted)):
                    output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def calibration_crops(samples_dir: Path) -> torch.Tensor:
    from workbench.demo_checkpoint import real_face_crops

    return real_face_crops([samples_dir / name for name in _CALIBRATION_FRAMES])


@pytest.fixture(scope="session")
def demo_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, calibration_crops: torch.Tensor
) -> Path:
    """The untrained demo checkpoint and its model card, written once per test session."""
    from detection.ml.classifier import save_checkpoint
    from workbench.demo_checkpoint import demo_model_card, demo_state_dict

    path = tmp_path_factory.mktemp("models") / "demo.pth"
    card = demo_model_card(crop_count=len(calibration_crops), seed=0, source="test frames")
    save_checkpoint(path, demo_state_dict(calibration_crops, seed=0), card)
    return path


@pytest.fixture(scope="session")
def analyzer(demo_checkpoint: Path) -> Analyzer:
    from detection.ml.pipeline import PipelineConfig, get_analyzer

    return get_analyzer(PipelineConfig(checkpoint=demo_checkpoint))


@pytest.fixture(scope="session")
def cut_analyzer(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Analyzer:
    """The demo weights under a card that leaves out the top fifth of each face box."""
    from detection.ml.classifier import load_checkpoint, save_checkpoint
    from detection.ml.pipeline import PipelineConfig, get_analyzer

    demo = load_checkpoint(demo_checkpoint)
    assert demo.card is not None
    path = tmp_path_factory.mktemp("models") / "cut.pth"
    save_checkpoint(path, demo.state_dict, dataclasses.replace(demo.card, crop_top_cut=0.2))
    return get_analyzer(PipelineConfig(checkpoint=path))
