"""Upload rate limits answer 429; repeated wrong passwords lock the account out for a while."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from PIL import Image

from deepfake_site.services import api_token_rotate
from detection.models import Submission
from detection.tests.factories import UserFactory
from detection.validation import RejectionCode

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def distinct_jpeg(seed: int) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 37 % 256, seed * 91 % 256, 128)).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = f"photo-{seed}.jpg"
    return buffer


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[mock.MagicMock]:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


def test_uploads_past_the_per_user_limit_get_429_with_a_clear_message(
    client: Client, settings: Any
) -> None:
    settings.UPLOAD_RATE_PER_USER = "3/m"
    client.force_login(UserFactory.create())
    statuses = [
        client.post(reverse("detection:upload"), {"image": distinct_jpeg(n)}).status_code
        for n in range(4)
    ]
    assert statuses == [302, 302, 302, 429]
    refused = client.post(reverse("detection:upload"), {"image": distinct_jpeg(99)})
    assert "Too many uploads" in refused.content.decode()
    assert "3 per minute" in refused.content.decode()
    assert Submission.objects.count() == 3


def test_api_uploads_past_the_per_address_limit_get_429_json(settings: Any) -> None:
    settings.UPLOAD_RATE_PER_IP = "2/m"
    answers = []
    for n in range(3):
        # Different accounts from one address: the address limit still applies.
        token = api_token_rotate(user=UserFactory.create())
        api = Client(HTTP_AUTHORIZATION=f"Token {token}")
        answers.append(api.post(reverse("api:submission-list"), {"image": distinct_jpeg(n)}))
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[-1].json()["code"] == RejectionCode.RATE_LIMITED
    assert "Too many uploads" in answers[-1].json()["detail"]


def test_uploads_beyond_those_in_flight_get_429_and_store_nothing(
    client: Client, settings: Any, private_media_root: Path
) -> None:
    settings.UPLOAD_MAX_IN_FLIGHT = 2
    user = UserFactory.create()
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")
    upload_url = reverse("api:submission-list")
    assert [api.post(upload_url, {"image": distinct_jpeg(n)}).status_code for n in (0, 1)] == [
        202,
        202,
    ]
    Submission.objects.filter(original_filename="photo-1.jpg").update(
        status=Submission.Status.PROCESSING
    )
    stored = sorted(private_media_root.rglob("*"))

    refused = api.post(upload_url, {"image": distinct_jpeg(2)})
    assert refused.status_code == 429
    assert refused.json()["code"] == RejectionCode.TOO_MANY_IN_FLIGHT
    assert "2 uploads" in refused.json()["detail"]
    client.force_login(user)
    page = client.post(reverse("detection:upload"), {"image": distinct_jpeg(3)})
    assert page.status_code == 429
    assert "2 uploads" in page.content.decode()
    assert Submission.objects.count() == 2
    assert sorted(private_media_root.rglob("*")) == stored
    assert api.post(upload_url, {"image": distinct_jpeg(0)}).status_code == 200, "no new work"

    Submission.objects.filter(original_filename="photo-1.jpg").update(status=Submission.Status.DONE)
    assert api.post(upload_url, {"image": distinct_jpeg(4)}).status_code == 202


def test_rate_limits_do_not_touch_reading_results(client: Client, settings: Any) -> None:
    settings.UPLOAD_RATE_PER_USER = "1/m"
    client.force_login(UserFactory.create())
    client.post(reverse("detection:upload"), {"image": distinct_jpeg(1)})
    client.post(reverse("detection:upload"), {"image": distinct_jpeg(2)})
    assert client.get(reverse("detection:submission-list")).status_code == 200


def test_repeated_wrong_passwords_lock_the_account_then_the_cool_off_releases_it(
    settings: Any,
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory.create(username="target")
    browser = Client()
    for _ in range(3):
        browser.post(reverse("login"), {"username": "target", "password": "guess"})
    locked = browser.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    assert "_auth_user_id" not in browser.session

    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time="2000-01-01T00:00:00Z")  # the cool-off passed
    browser.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert "_auth_user_id" in browser.session


def change_password(browser: Client, old_password: str) -> tuple[int, str]:
    """The status and the page of an attempt to change the password."""
    new = "a-brand-new-passphrase-7"
    response = browser.post(
        reverse("password_change"),
        {"old_password": old_password, "new_password1": new, "new_password2": new},
    )
    return response.status_code, response.content.decode()


def test_wrong_old_passwords_on_the_password_page_lock_the_account_out(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory.create(username="target")
    browser = Client()
    browser.force_login(user)
    assert [change_password(browser, "guess")[0] for _ in range(2)] == [200, 200]
    status, page = change_password(browser, "guess")
    assert status == 429
    assert "Too many failed log-ins" in page
    # The session that guessed is over, and the right password does not sign back in.
    assert "_auth_user_id" not in browser.session
    again = Client().post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert again.status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_wrong_old_passwords_and_wrong_log_ins_count_together(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory.create(username="target")
    Client().post(reverse("login"), {"username": "target", "password": "guess"})
    browser = Client()
    browser.force_login(user)
    change_password(browser, "guess")
    assert change_password(browser, "guess")[0] == 429


def test_the_right_old_password_still_changes_it_below_the_limit(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory.create(username="target")
    browser = Client()
    browser.force_login(user)
    change_password(browser, "guess")
    assert change_password(browser, PASSWORD)[0] == 302
    user.refresh_from_db()
    assert user.check_password("a-brand-new-passphrase-7")


def sign_up(number: int, address: str = "127.0.0.1") -> tuple[int, str]:
    """A fresh visitor from `address` signs up; the status and the page it got."""
    response = Client(REMOTE_ADDR=address).post(
        reverse("signup"),
        {
            "username": f"newcomer{number}",
            "email": f"newcomer{number}@example.com",
            "password1": "a-long-enough-passphrase-42",
            "password2": "a-long-enough-passphrase-42",
        },
    )
    return response.status_code, response.content.decode()


def test_sign_ups_past_the_per_address_limit_get_429_with_a_clear_page(settings: Any) -> None:
    settings.SIGNUP_RATE_PER_IP = "2/h"
    assert [sign_up(n)[0] for n in range(2)] == [302, 302]
    status, page = sign_up(2)
    assert status == 429
    assert "Too many sign-ups from your network address" in page
    assert "2 per hour" in page
    assert not User.objects.filter(username="newcomer2").exists()
    # Another address is not held back.
    assert sign_up(3, address="192.0.2.7")[0] == 302


# docker compose puts nginx in front: every request comes from the proxy's address, and nginx
# appends the client's address to X-Forwarded-For.
PROXY = "172.18.0.5"


def through_the_proxy(client_address: str, claimed: str = "") -> Client:
    """A client behind nginx; `claimed` is what it wrote into X-Forwarded-For itself."""
    forwarded = f"{claimed}, {client_address}" if claimed else client_address
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)


def api_upload(client: Client, n: int) -> int:
    token = api_token_rotate(user=UserFactory.create())
    response = client.post(
        reverse("api:submission-list"),
        {"image": distinct_jpeg(n)},
        headers={"Authorization": f"Token {token}"},
    )
    return response.status_code


def test_behind_a_proxy_each_client_address_has_its_own_upload_limit(settings: Any) -> None:
    settings.PROXY_COUNT = 1
    settings.UPLOAD_RATE_PER_IP = "2/m"
    # A client cannot escape its limit by writing its own X-Forwarded-For entries.
    first_client = [
        api_upload(through_the_proxy("203.0.113.1", claimed=f"198.51.100.{n}"), n) for n in range(3)
    ]
    assert first_client == [202, 202, 429]
    assert api_upload(through_the_proxy("203.0.113.2"), 10) == 202


def test_behind_a_proxy_a_lockout_holds_only_the_guessers_address(settings: Any) -> None:
    settings.PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory.create(username="target")
    guesser = through_the_proxy("203.0.113.66")
    for _ in range(3):
        guesser.post(reverse("login"), {"username": "target", "password": "guess"})
    locked = guesser.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert locked.status_code == 429

    owner = through_the_proxy("203.0.113.7")
    owner.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert "_auth_user_id" in owner.session


def test_without_a_proxy_forwarded_headers_are_ignored(settings: Any) -> None:
    settings.PROXY_COUNT = 0
    settings.UPLOAD_RATE_PER_IP = "1/m"
    answers = [api_upload(Client(HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"), n) for n in range(2)]
    assert answers == [202, 429]
