"""Every URL (web, API, media, admin) for every kind of visitor: the status each must get.

Also: every state-changing form refuses a POST without a CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from detection.models import Submission
from detection.tests.factories import SubmissionFactory, UserFactory, make_analysed
from moderation.models import ReviewCase
from moderation.services import review_case_open

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other_uploader", "moderator", "staff")


@dataclass(frozen=True)
class World:
    users: dict[str, User | None]
    submission: Submission
    case: ReviewCase


@pytest.fixture
def world() -> World:
    owner = UserFactory.create(username="owner")
    moderator = UserFactory.create(username="moderator")
    moderator.groups.add(Group.objects.get(name="moderators"))
    submission = make_analysed(SubmissionFactory.create(uploader=owner))
    case = review_case_open(submission=submission)
    assert case is not None
    return World(
        users={
            "anonymous": None,
            "owner": owner,
            "other_uploader": UserFactory.create(username="other"),
            "moderator": moderator,
            "staff": UserFactory.create(username="boss", is_staff=True, is_superuser=True),
        },
        submission=submission,
        case=case,
    )


Url = Callable[[World], str]


def submission_url(name: str, *extra: object) -> Url:
    return lambda world: reverse(name, args=[world.submission.id, *extra])


def case_url(name: str) -> Url:
    return lambda world: reverse(name, args=[world.case.pk])


def plain(name: str) -> Url:
    return lambda world: reverse(name)


def statuses(anonymous: int, owner: int, other: int, moderator: int, staff: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, owner, other, moderator, staff), strict=True))


EVERYONE = statuses(200, 200, 200, 200, 200)
SIGNED_IN = statuses(302, 200, 200, 200, 200)
OWNER_AND_REVIEWERS = statuses(302, 200, 404, 200, 200)
REVIEWERS = statuses(302, 403, 403, 200, 200)
ADMINS = statuses(302, 302, 302, 302, 200)
API_SIGNED_IN = statuses(401, 200, 200, 200, 200)
API_OWNER_AND_REVIEWERS = statuses(401, 200, 404, 200, 200)
API_REVIEWERS = statuses(401, 403, 403, 200, 200)

TABLE: list[tuple[str, Url, dict[str, int]]] = [
    ("home", plain("home"), EVERYONE),
    ("sign-up", plain("signup"), statuses(200, 302, 302, 302, 302)),
    ("log-in", plain("login"), EVERYONE),
    ("password", plain("password_change"), SIGNED_IN),
    ("upload", plain("detection:upload"), SIGNED_IN),
    ("my-submissions", plain("detection:submission-list"), SIGNED_IN),
    ("api-token", plain("detection:api-token"), SIGNED_IN),
    ("submission", submission_url("detection:submission-detail"), OWNER_AND_REVIEWERS),
    ("status", submission_url("detection:submission-status"), OWNER_AND_REVIEWERS),
    ("image", submission_url("detection:submission-image"), OWNER_AND_REVIEWERS),
    ("thumbnail", submission_url("detection:submission-thumbnail"), OWNER_AND_REVIEWERS),
    ("overlay", submission_url("detection:submission-overlay"), OWNER_AND_REVIEWERS),
    ("face-crop", submission_url("detection:face-crop", 1), OWNER_AND_REVIEWERS),
    ("face-heatmap", submission_url("detection:face-heatmap", 1), OWNER_AND_REVIEWERS),
    ("queue", plain("moderation:queue"), REVIEWERS),
    ("case", case_url("moderation:case-detail"), REVIEWERS),
    ("decision-log", plain("moderation:decision-log"), REVIEWERS),
    ("decision-log-csv", plain("moderation:decision-log-csv"), REVIEWERS),
    ("metrics", plain("moderation:metrics"), REVIEWERS),
    ("admin", plain("admin:index"), ADMINS),
    ("admin-submissions", plain("admin:detection_submission_changelist"), ADMINS),
    ("admin-submission", submission_url("admin:detection_submission_change"), ADMINS),
    ("admin-cases", plain("admin:moderation_reviewcase_changelist"), ADMINS),
    ("admin-events", plain("admin:moderation_reviewevent_changelist"), ADMINS),
    ("api-list", plain("api:submission-list"), API_SIGNED_IN),
    ("api-detail", submission_url("api:submission-detail"), API_OWNER_AND_REVIEWERS),
    ("api-cases", plain("api:case-list"), API_REVIEWERS),
    ("api-case", case_url("api:case-detail"), API_REVIEWERS),
    ("api-evidence", submission_url("api:submission-evidence"), API_REVIEWERS),
    ("api-webhooks", plain("api:webhook-list"), API_SIGNED_IN),
    ("webhooks", plain("webhooks:endpoints"), SIGNED_IN),
    ("api-schema", plain("api-schema"), EVERYONE),
    ("api-docs", plain("api-docs"), EVERYONE),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "url", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_every_url_answers_each_role_as_expected(
    world: World, client: Client, role: str, name: str, url: Url, expected: dict[str, int]
) -> None:
    user = world.users[role]
    if user is not None:
        client.force_login(user)
    response = client.get(url(world))
    assert response.status_code == expected[role], f"{name} as {role}"
    if expected[role] == 302 and role == "anonymous":
        assert "login" in response["Location"]


POST_FORMS: list[tuple[str, Url, str]] = [
    ("sign-up", plain("signup"), "anonymous"),
    ("log-in", plain("login"), "anonymous"),
    ("log-out", plain("logout"), "owner"),
    ("password", plain("password_change"), "owner"),
    ("upload", plain("detection:upload"), "owner"),
    ("api-token", plain("detection:api-token"), "owner"),
    ("api-upload-with-session", plain("api:submission-list"), "owner"),
    ("api-decision-with-session", case_url("api:case-decision"), "moderator"),
    ("api-claim-next-with-session", plain("api:case-next"), "moderator"),
    ("api-webhook-with-session", plain("api:webhook-list"), "owner"),
    ("webhooks-add", plain("webhooks:endpoints"), "owner"),
    ("next-case", plain("moderation:next-case"), "moderator"),
    ("bulk-decide", plain("moderation:bulk-decide"), "moderator"),
    ("claim", case_url("moderation:case-claim"), "moderator"),
    ("decide", case_url("moderation:case-decide"), "moderator"),
    ("release", case_url("moderation:case-release"), "moderator"),
    ("admin-action", plain("admin:detection_submission_changelist"), "staff"),
]


@pytest.mark.parametrize(("name", "url", "role"), POST_FORMS, ids=[row[0] for row in POST_FORMS])
def test_state_changing_post_without_csrf_token_is_refused(
    world: World, name: str, url: Url, role: str
) -> None:
    client = Client(enforce_csrf_checks=True)
    user = world.users[role]
    if user is not None:
        client.force_login(user)
    before = (Submission.objects.count(), ReviewCase.objects.get().state, User.objects.count())
    response = client.post(url(world), {"decision": "confirm", "note": "x", "username": "mallory"})
    assert response.status_code == 403, name
    after = (Submission.objects.count(), ReviewCase.objects.get().state, User.objects.count())
    assert after == before
