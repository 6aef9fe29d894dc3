"""The uploader's and the moderator's journeys in real Chromium, against a real server and worker.

Every page reached is saved as a screenshot in the folder the test run prints at the end, and
every journey ends by checking that the browser blocked nothing under the site's
Content-Security-Policy (a blocked script or style is a page that silently half-works).
With DOCS_SCREENSHOTS=1 the result page and the case page also replace the README's
pictures in docs/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from conftest import (
    REPO_ROOT,
    TEST_FRAMES,
    WorkerProcess,
    encode_clip,
    require_service,
    screenshot_folder,
)
from detection.tests.factories import SubmissionFactory, make_analysed
from moderation.services import review_case_open
from moderation.tests.factories import moderators_group

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
PASSWORD = "journey-passphrase-8472"
CASE_URL = re.compile(r"/moderation/cases/[0-9a-f-]{36}/$")

if not os.environ.get("CI"):
    pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright  # noqa: E402

# Chromium reports a blocked resource on the console; the event also carries what was blocked
# and where, which this script adds to the console before any page script runs.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => console.error(
  `CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`
  + ` in ${event.sourceFile}:${event.lineNumber}`
));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_service(CHROMIUM.exists(), f"Chromium at {CHROMIUM}")
    # Playwright drives the browser from an event loop in this thread; the ORM calls the
    # tests make between steps are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
    # Never leak the switch into later tests or the processes they start.
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


class Journey:
    """One browser context (one person), saving a screenshot of every page it reaches."""

    def __init__(self, browser: Browser, base_url: str, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(REPORT_CSP_VIOLATIONS)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._note_csp_violation)
        self.base_url = base_url
        self.name = name
        self.shots = 0
        self.csp_violations: list[str] = []

    def _note_csp_violation(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "CSP violation" in message.text:
            self.csp_violations.append(f"{self.page.url}: {message.text}")

    def open(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page

    def shot(self, label: str) -> Path:
        self.shots += 1
        path = screenshot_folder() / f"{self.name}-{self.shots:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def log_in(self, username: str) -> None:
        self.open("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button[type=submit]")
        expect(self.page.locator(".nav-user summary")).to_have_text(username)


def wait_until(page: Page, condition: str, timeout: float = 15) -> None:
    """Poll a JavaScript function until it returns true. (wait_for_function would evaluate
    its text with eval, which the site's Content-Security-Policy rightly blocks.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {condition}")
        time.sleep(0.1)


def player_near(seconds: float) -> str:
    return f"() => Math.abs(document.getElementById('video-player').currentTime - {seconds}) < 0.1"


def assert_no_csp_violations(*journeys: Journey) -> None:
    assert [violation for journey in journeys for violation in journey.csp_violations] == []


def keep_for_docs(screenshot: Path, name: str) -> None:
    if os.environ.get("DOCS_SCREENSHOTS"):
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, docs / name)


@pytest.fixture
def analysis_worker(start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path) -> None:
    # Zero thresholds flag every face, so the untrained demo model opens a review case.
    start_worker(
        queues="inference,celery",
        env={
            "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
            "FLAG_THRESHOLD": "0",
            "UNCERTAIN_THRESHOLD": "0",
            "TORCH_NUM_THREADS": "1",
        },
    )


@pytest.fixture
def video_worker(start_worker: Callable[..., WorkerProcess], demo_checkpoint: Path) -> None:
    # As for photos: zero thresholds flag the untrained model's every clip, opening a case.
    start_worker(
        queues="video",
        env={
            "DEEPFAKE_CHECKPOINT": str(demo_checkpoint),
            "FLAG_THRESHOLD": "0",
            "UNCERTAIN_THRESHOLD": "0",
            "TORCH_NUM_THREADS": "1",
        },
    )


def make_user(username: str, *, moderator: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD)
    if moderator:
        # Built again if an earlier transactional test flushed what the migration made.
        user.groups.add(moderators_group())
    return user


def test_uploader_signs_up_uploads_and_a_moderator_confirms_the_case(
    browser: Browser, live_server: Any, analysis_worker: None
) -> None:
    uploader = Journey(browser, live_server.url, "uploader")
    page = uploader.open("/")
    uploader.shot("home")
    page.click("text=Sign up")
    page.fill("#id_username", "newcomer")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    uploader.shot("sign-up")
    page.click("button[type=submit]")
    page.click("nav >> text=Upload")
    # The upload page's script listens for the file choice: wait until it has run (the load
    # event), or a choice made while the page is still loading goes unnoticed.
    page.wait_for_url("**/upload/")
    page.set_input_files("input[type=file]", str(TEST_FRAMES / "fake_frame_0.jpg"))
    expect(page.locator("#chosen-file")).to_contain_text("fake_frame_0.jpg")
    uploader.shot("upload-chosen")
    page.click("#upload-button")
    expect(page).to_have_url(re.compile(r"/submissions/[0-9a-f-]{36}/$"))
    result_url = page.url
    uploader.shot("status-live")
    # A marker on the window survives only if the page is never reloaded.
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#face-2")).to_be_visible(timeout=120_000)
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#face-1 img")).to_have_count(3)  # crop, and heatmap over crop
    for image in page.locator(".face img, #overlay-image").all():
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0
    expect(page.locator("#face-1")).to_contain_text("P(fake)")
    expect(page.locator("#face-1")).not_to_contain_text("P(real)")
    expect(page.locator("#verdict")).to_have_text("Likely manipulated")
    # The heatmap's opacity slider fades it over the crop.
    page.locator("#face-1 .heat-opacity").fill("30")
    assert page.locator("#face-1 .heat-layer").evaluate("img => img.style.opacity") == "0.3"
    expect(page.locator("text=Untrained model")).to_be_visible()
    keep_for_docs(uploader.shot("result"), "submission-result.png")

    waiting_next = make_analysed(
        SubmissionFactory.create(uploader=make_user("second-uploader")),
        fake_probabilities=(0.05,),
        verdict="uncertain",
    )
    review_case_open(submission=waiting_next)
    make_user("moderator", moderator=True)
    moderator = Journey(browser, live_server.url, "moderator")
    moderator.log_in("moderator")
    page = moderator.open("/moderation/")
    expect(page.locator("text=newcomer").first).to_be_visible()
    moderator.shot("queue")
    page.keyboard.press("n")
    expect(page).to_have_url(CASE_URL)
    first_case_url = page.url
    expect(page.locator("body")).to_contain_text("newcomer")
    page.keyboard.press("b")  # unblur to look at the faces
    expect(page.locator("img[src*='heatmap']").first).to_be_visible()
    assert page.locator("img[src*='heatmap']").count() == 2
    keep_for_docs(moderator.shot("case"), "moderation-case.png")
    page.keyboard.press("/")
    page.keyboard.type("Blending seams along both jawlines.")
    page.keyboard.press("Escape")
    page.keyboard.press("c")
    page.wait_for_url(lambda url: url != first_case_url and CASE_URL.search(url) is not None)
    expect(page.locator("body")).to_contain_text("second-uploader")
    # The moderator chose to see the images on the first case; the next one remembers it.
    expect(page.locator("[data-blur-scope]")).not_to_have_class(re.compile(r"\bblurred\b"))
    moderator.shot("next-case")
    page = moderator.open("/moderation/metrics/")
    expect(page.locator("svg.chart").first).to_be_visible()
    expect(page.locator("#estimate-false-positive")).to_contain_text("decided case")
    keep_for_docs(moderator.shot("metrics"), "moderation-metrics.png")

    page = uploader.open(result_url.removeprefix(live_server.url))
    expect(page.locator("#moderation-outcome")).to_have_text("confirmed manipulated")
    uploader.shot("outcome")
    assert_no_csp_violations(uploader, moderator)


def test_uploader_gets_not_found_for_another_users_submission_and_no_queue(
    browser: Browser, live_server: Any
) -> None:
    owner = make_user("owner")
    submission = SubmissionFactory.create(uploader=owner)
    make_user("nosy")
    nosy = Journey(browser, live_server.url, "nosy")
    nosy.log_in("nosy")
    response = nosy.page.goto(f"{live_server.url}/submissions/{submission.id}/")
    assert response is not None and response.status == 404
    expect(nosy.page.locator("h1")).to_have_text("Not found")
    nosy.shot("not-found")
    expect(nosy.page.locator("nav >> text=Moderation")).to_have_count(0)
    response = nosy.page.goto(f"{live_server.url}/moderation/")
    assert response is not None and response.status == 403
    expect(nosy.page.locator("h1")).to_have_text("Not allowed")
    nosy.shot("queue-forbidden")
    assert_no_csp_violations(nosy)


def test_rejected_file_shows_its_error_next_to_the_form(
    browser: Browser, live_server: Any, tmp_path: Path
) -> None:
    make_user("careless")
    journey = Journey(browser, live_server.url, "rejected")
    journey.log_in("careless")
    page = journey.open("/upload/")
    not_an_image = tmp_path / "holiday.jpg"
    not_an_image.write_bytes(b"%PDF-1.7 this is a document, not a photo")
    page.set_input_files("input[type=file]", str(not_an_image))
    page.click("#upload-button")
    errors = page.locator("#upload-errors")
    expect(errors).to_contain_text("not a JPEG, PNG or WebP image")
    expect(page.locator("#upload-form")).to_be_visible()
    journey.shot("rejected")
    assert_no_csp_violations(journey)


def test_api_docs_and_admin_work_under_the_content_security_policy(
    browser: Browser, live_server: Any
) -> None:
    """Pages from installed apps' templates, not ours: Swagger UI and the Django admin."""
    User.objects.create_superuser("root", password=PASSWORD)
    journey = Journey(browser, live_server.url, "outside-templates")
    page = journey.open("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Faceproof API")
    expect(page.locator(".opblock-summary-path").first).to_contain_text("/api/v1/submissions/")
    page.locator(".opblock-summary").first.click()  # expands, drawing the schema's icons
    expect(page.locator(".opblock-body").first).to_be_visible()
    journey.shot("api-docs")
    page.click(".docs-topbar >> text=Faceproof")
    expect(page).to_have_url(live_server.url + "/")
    page = journey.open("/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    page = journey.open("/admin/auth/user/add/")
    expect(page.locator("#id_username")).to_be_visible()
    journey.shot("admin")
    assert_no_csp_violations(journey)


def test_wording_quality_labels_and_the_narrow_layout(browser: Browser, live_server: Any) -> None:
    owner = make_user("owner")
    clean = make_analysed(
        SubmissionFactory.create(uploader=owner, original_filename="holiday.jpg"),
        fake_probabilities=(0.12, 0.97),
        verdict="real",
        fake_probability=0.12,
        flag_threshold=0.81,
        uncertain_threshold=0.66,
    )
    # Face 2 is tiny and blurred: shown, scored, and not used for the verdict.
    clean.faces.filter(index=2).update(
        quality="low", quality_reasons=["too_small", "blurry"], size_px=31
    )
    journey = Journey(browser, live_server.url, "wording")
    journey.log_in("owner")
    page = journey.open(f"/submissions/{clean.id}/")
    expect(page.locator("#verdict")).to_have_text("No manipulation found")
    expect(page.locator("#thresholds")).to_contain_text("P(fake) ≥ 0.81")
    expect(page.locator("#face-2")).to_contain_text("Too poor to judge")
    expect(page.locator("#face-2")).to_contain_text("Not used for the verdict: too small, blurred")
    expect(page.locator("body")).not_to_contain_text("Likely authentic")
    journey.shot("result-wording")

    narrow_pages = {
        f"/submissions/{clean.id}/": ("#verdict", "#face-1 strong"),
        "/submissions/": ("#submission-table td[data-label='Verdict']",),
    }
    for number, (path, selectors) in enumerate(narrow_pages.items()):
        narrow = browser.new_context(viewport={"width": 390, "height": 844})
        phone = narrow.new_page()
        phone.goto(live_server.url + "/accounts/login/")
        phone.fill("#id_username", "owner")
        phone.fill("#id_password", PASSWORD)
        phone.click("button[type=submit]")
        phone.goto(live_server.url + path)
        # Nothing runs off the right edge: verdict and P(fake) stay on screen.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
        for selector in selectors:
            box = phone.locator(selector).first.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390, (path, selector)
        phone.screenshot(path=str(screenshot_folder() / f"narrow-{number}.png"), full_page=True)
        narrow.close()


def test_a_batch_upload_shows_each_photos_progress_and_error(
    browser: Browser, live_server: Any, tmp_path: Path
) -> None:
    """Several photos at once: each is sent on its own, with its own progress bar, and ends
    with a link to its result or the reason it was refused."""
    make_user("batcher")
    journey = Journey(browser, live_server.url, "batch")
    journey.log_in("batcher")
    page = journey.open("/upload/")
    not_an_image = tmp_path / "scan.jpg"
    not_an_image.write_bytes(b"%PDF-1.7 this is a document, not a photo")
    page.set_input_files(
        "input[type=file]",
        [
            str(TEST_FRAMES / "real_frame_1.jpg"),
            str(not_an_image),
            str(TEST_FRAMES / "fake_frame_2.jpg"),
        ],
    )
    expect(page.locator("#chosen-file")).to_contain_text("3 files chosen")
    page.click("#upload-button")
    items = page.locator("#batch-results .batch-item")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_class(re.compile(r"accepted"), timeout=30_000)
    expect(items.nth(2)).to_have_class(re.compile(r"accepted"), timeout=30_000)
    expect(items.nth(1)).to_have_class(re.compile(r"refused"))
    expect(items.nth(1)).to_contain_text("scan.jpg")
    expect(items.nth(1)).to_contain_text("not a JPEG, PNG or WebP image")
    expect(items.nth(0).locator("a")).to_have_attribute(
        "href", re.compile(r"/submissions/[0-9a-f-]{36}/$")
    )
    # No worker runs here: each accepted photo is followed while it waits in the queue.
    expect(items.nth(0).locator(".batch-state")).to_have_text("Queued")
    assert page.url == live_server.url + "/upload/"  # the page stayed; each photo answered
    journey.shot("batch")
    assert_no_csp_violations(journey)


def test_uploader_plays_a_clip_and_seeks_it_from_the_timeline_chart(
    browser: Browser, live_server: Any, video_worker: None, tmp_path: Path
) -> None:
    make_user("filmmaker")
    journey = Journey(browser, live_server.url, "video")
    journey.log_in("filmmaker")
    page = journey.open("/upload/")
    clip = tmp_path / "interview.webm"
    clip.write_bytes(
        encode_clip(
            ["real_frame_1", "real_frame_3", "real_frame_1"],
            seconds_each=1,
            codec="libvpx-vp9",
            container="webm",
        )
    )
    page.set_input_files("input[type=file]", str(clip))
    page.click("#upload-button")
    expect(page).to_have_url(re.compile(r"/submissions/[0-9a-f-]{36}/$"))
    chart = page.locator("svg.timeline-chart")
    expect(chart).to_be_visible(timeout=120_000)
    expect(page.locator("#track-2")).to_contain_text("seen on too few frames")
    # The first person's line breaks while the second is on screen.
    expect(chart.locator("polyline")).to_have_count(3)

    # The clip plays from the access-checked media view.
    page.evaluate(
        "() => { const video = document.getElementById('video-player');"
        " video.muted = true; return video.play(); }"
    )
    wait_until(page, "() => document.getElementById('video-player').currentTime > 0.5")
    page.evaluate("() => document.getElementById('video-player').pause()")
    journey.shot("video-playing")

    # A click three quarters of the way along the time axis seeks there.
    duration = float(chart.get_attribute("data-duration") or 0)
    left = float(chart.get_attribute("data-plot-left") or 0)
    width = float(chart.get_attribute("data-plot-width") or 0)
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None and duration > 2
    scale = box["width"] / 640
    page.mouse.click(box["x"] + (left + 0.75 * width) * scale, box["y"] + box["height"] / 2)
    target = 0.75 * duration
    wait_until(
        page,
        f"() => Math.abs(document.getElementById('video-player').currentTime - {target}) < 0.1",
    )
    # The line on the chart follows once the player has moved.
    wait_until(
        page,
        "() => Math.abs(Number(document.querySelector('svg.timeline-chart .playhead')"
        f".getAttribute('x1')) - {left + 0.75 * width}) < 2",
    )

    # A person's button jumps to their most suspicious frame.
    button = page.locator("#track-1 [data-seek]")
    worst = float(button.get_attribute("data-seek") or 0)
    button.click()
    wait_until(page, player_near(worst))
    keep_for_docs(journey.shot("video-result"), "video-result.png")

    # The moderator's case page shows the same player and chart, and the decision works.
    make_user("video-moderator", moderator=True)
    moderator = Journey(browser, live_server.url, "video-moderator")
    moderator.log_in("video-moderator")
    page = moderator.open("/moderation/")
    page.keyboard.press("n")
    expect(page).to_have_url(CASE_URL)
    expect(page.locator("#video-player")).to_have_class(re.compile(r"\bblurrable\b"))
    page.keyboard.press("b")
    case_chart = page.locator("svg.timeline-chart")
    expect(case_chart).to_be_visible()
    case_chart.scroll_into_view_if_needed()
    box = case_chart.bounding_box()
    assert box is not None
    scale = box["width"] / 640
    page.mouse.click(box["x"] + (left + 0.5 * width) * scale, box["y"] + box["height"] / 2)
    wait_until(page, player_near(0.5 * duration))
    moderator.shot("video-case")
    page.keyboard.press("c")
    expect(page.locator(".messages")).to_contain_text("Confirm manipulated: interview.webm")
    assert_no_csp_violations(journey, moderator)
