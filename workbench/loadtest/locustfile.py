"""Locust traffic for `manage.py loadtest`: API uploads with token auth, then status polls.

Every simulated user is one API client, as an integrating platform would be: it uploads a
photo, polls the returned Location until the analysis is final, pauses, and uploads the next.
Each upload is a sample frame with one random pixel changed and re-encoded, so its bytes are
new and the service never answers with an earlier submission of the same image.

Environment: LOADTEST_TOKENS (comma-separated API tokens, one per user) and
LOADTEST_SAMPLES_DIR (a folder of .jpg frames).
"""

from __future__ import annotations

import io
import itertools
import os
import random
import time
from pathlib import Path

from locust import HttpUser, between, task
from PIL import Image

SAMPLES = sorted(Path(os.environ["LOADTEST_SAMPLES_DIR"]).glob("*.jpg"))
TOKENS = itertools.cycle(os.environ["LOADTEST_TOKENS"].split(","))
UPLOAD_URL = "/api/v1/submissions/"
POLL_INTERVAL_SECONDS = 1.0
RESULT_TIMEOUT_SECONDS = 300
FINAL_STATUSES = {"done", "no_face", "failed"}
variation = random.Random()  # noqa: S311 (pixel variations, not secrets)


def distinct_variant(path: Path) -> bytes:
    """The frame with one random pixel set to a random colour, as a fresh JPEG."""
    with Image.open(path) as frame:
        pixels = frame.convert("RGB")
    spot = (variation.randrange(pixels.width), variation.randrange(pixels.height))
    colour = (variation.randrange(256), variation.randrange(256), variation.randrange(256))
    pixels.putpixel(spot, colour)
    encoded = io.BytesIO()
    pixels.save(encoded, format="JPEG", quality=90)
    return encoded.getvalue()


class ApiClient(HttpUser):
    # Think time between seeing one result and sending the next photo.
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {next(TOKENS)}"

    @task
    def upload_and_wait_for_the_result(self) -> None:
        location = self.upload()
        if location is None:
            return
        deadline = time.monotonic() + RESULT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            # Locust patches time.sleep for gevent: only this simulated user waits.
            time.sleep(POLL_INTERVAL_SECONDS)
            with self.client.get(location, name="status", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"status poll answered {response.status_code}")
                    return
                if response.json()["status"] in FINAL_STATUSES:
                    return

    def upload(self) -> str | None:
        sample = variation.choice(SAMPLES)
        files = {"image": (sample.name, distinct_variant(sample), "image/jpeg")}
        with self.client.post(
            UPLOAD_URL, files=files, name="upload", catch_response=True
        ) as response:
            if response.status_code == 202:
                return str(response.headers["Location"])
            # 200 means the service took these bytes for an earlier upload: a broken variant.
            response.failure(f"upload answered {response.status_code}: {response.text[:200]}")
            return None
