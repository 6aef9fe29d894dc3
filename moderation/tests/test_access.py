"""Every moderation URL, for every kind of visitor: anonymous, uploader, moderator, staff."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from moderation.models import ReviewCase

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    needs_case: bool = False
    # What a moderator or staff member gets: pages render, actions redirect.
    allowed_status: int = 200


ROUTES = [
    Route("moderation:queue", "get"),
    Route("moderation:next-case", "post", allowed_status=302),
    Route("moderation:bulk-decide", "post", allowed_status=302),
    Route("moderation:case-detail", "get", needs_case=True),
    Route("moderation:case-claim", "post", needs_case=True, allowed_status=302),
    Route("moderation:case-decide", "post", needs_case=True, allowed_status=302),
    Route("moderation:case-release", "post", needs_case=True, allowed_status=400),
    Route("moderation:decision-log", "get"),
    Route("moderation:decision-log-csv", "get"),
    Route("moderation:metrics", "get"),
]
ROUTE_IDS = [route.name.split(":")[1] for route in ROUTES]


def _request(client: Client, route: Route, case: ReviewCase) -> tuple[str, int]:
    kwargs = {"case_id": case.pk} if route.needs_case else {}
    url = reverse(route.name, kwargs=kwargs)
    if route.method == "get":
        return url, client.get(url).status_code
    data = {"decision": "confirm", "note": "seen", "cases": [str(case.pk)]}
    return url, client.post(url, data).status_code


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_anonymous_visitor_is_sent_to_log_in_from_every_moderation_url(
    client: Client, route: Route, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    kwargs = {"case_id": case.pk} if route.needs_case else {}
    url = reverse(route.name, kwargs=kwargs)
    response = client.get(url) if route.method == "get" else client.post(url, {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.PENDING


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_uploader_gets_403_on_every_moderation_url(
    client: Client, route: Route, make_case: Callable[..., ReviewCase], uploader: User
) -> None:
    case = make_case()
    client.force_login(uploader)
    _, status = _request(client, route, case)
    assert status == 403
    case.refresh_from_db()
    assert case.state == ReviewCase.State.PENDING and case.claimed_by is None


@pytest.mark.parametrize("role", ["moderator", "staff"])
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_moderator_and_staff_reach_every_moderation_url(
    client: Client,
    route: Route,
    role: str,
    make_case: Callable[..., ReviewCase],
    request: pytest.FixtureRequest,
) -> None:
    case = make_case()
    client.force_login(request.getfixturevalue(role))
    url, status = _request(client, route, case)
    # Release without holding the case is refused in the page; everything else goes through.
    assert status == route.allowed_status, url


def test_get_is_refused_on_actions_that_change_state(
    client: Client, moderator: User, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    client.force_login(moderator)
    for route in ROUTES:
        if route.method == "post":
            kwargs = {"case_id": case.pk} if route.needs_case else {}
            assert client.get(reverse(route.name, kwargs=kwargs)).status_code == 405


def test_actions_require_the_csrf_token(
    moderator: User, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    client = Client(enforce_csrf_checks=True)
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:case-decide", kwargs={"case_id": case.pk}),
        {"decision": "confirm", "note": "x"},
    )
    assert response.status_code == 403
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.PENDING


def test_unknown_case_is_404_for_a_moderator(client: Client, moderator: User) -> None:
    client.force_login(moderator)
    url = reverse("moderation:case-detail", kwargs={"case_id": uuid.uuid4()})
    assert client.get(url).status_code == 404


def test_navigation_shows_the_queue_to_moderators_only(
    client: Client, uploader: User, moderator: User
) -> None:
    client.force_login(uploader)
    assert reverse("moderation:queue") not in client.get(reverse("home")).content.decode()
    client.force_login(moderator)
    assert reverse("moderation:queue") in client.get(reverse("home")).content.decode()
