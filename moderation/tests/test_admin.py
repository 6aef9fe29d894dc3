"""The Django admin for submissions, faces and cases: lists, search, actions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from detection.models import Submission
from moderation import services
from moderation.models import Decision, ReviewCase, ReviewEvent
from moderation.tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_for(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_submission_list_shows_thumbnails_and_searches_by_uploader_and_sha256(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    mine = make_case()
    theirs = make_case(uploader=StaffFactory.create(username="someone-else"))
    url = reverse("admin:detection_submission_changelist")
    html = admin_client_for.get(url).content.decode()
    assert reverse("detection:submission-thumbnail", args=[mine.submission_id]) in html

    def found(query: str) -> set[object]:
        response = admin_client_for.get(url, {"q": query})
        return {submission.pk for submission in response.context["cl"].result_list}

    assert found("someone-else") == {theirs.submission_id}
    assert found(mine.submission.sha256) == {mine.submission_id}
    response = admin_client_for.get(url, {"verdict__exact": "fake", "status__exact": "done"})
    assert response.status_code == 200


def test_submission_page_is_read_only_with_its_faces_inline(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case(faces=2)
    url = reverse("admin:detection_submission_change", args=[case.submission_id])
    html = admin_client_for.get(url).content.decode()
    assert reverse("detection:face-heatmap", args=[case.submission_id, 1]) in html
    assert 'name="sha256"' not in html and 'name="_save"' not in html
    assert case.submission.sha256 in html
    assert admin_client_for.get(reverse("admin:detection_submission_add")).status_code == 403


def test_rerun_analysis_action_requeues_the_submission(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    response = admin_client_for.post(
        reverse("admin:detection_submission_changelist"),
        {"action": "rerun_analysis", "_selected_action": [str(case.submission_id)]},
        follow=True,
    )
    assert "Re-queued 1 submission(s)" in response.content.decode()
    assert Submission.objects.get(pk=case.submission_id).status == Submission.Status.QUEUED


def test_reopen_case_action_on_submissions_reopens_decided_cases_only(
    admin_client_for: Client,
    admin_user: User,
    make_case: Callable[..., ReviewCase],
    moderator: User,
) -> None:
    decided = make_case()
    services.review_case_decide(case=decided, user=moderator, decision=Decision.CONFIRM)
    still_open = make_case()
    response = admin_client_for.post(
        reverse("admin:detection_submission_changelist"),
        {
            "action": "reopen_case",
            "_selected_action": [str(decided.submission_id), str(still_open.submission_id)],
        },
        follow=True,
    )
    html = response.content.decode()
    assert "Reopened 1 case(s)" in html and "Skipped 1 case(s)" in html
    decided.refresh_from_db()
    assert decided.state == ReviewCase.State.PENDING
    reopened = decided.events.get(kind=ReviewEvent.Kind.REOPENED)
    assert reopened.actor == admin_user
    assert not still_open.events.filter(kind=ReviewEvent.Kind.REOPENED).exists()


def test_reopen_case_action_on_cases(
    admin_client_for: Client, make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    changelist = reverse("admin:moderation_reviewcase_changelist")
    html = admin_client_for.get(changelist).content.decode()
    assert reverse("detection:submission-thumbnail", args=[case.submission_id]) in html
    admin_client_for.post(changelist, {"action": "reopen_case", "_selected_action": [str(case.pk)]})
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.PENDING


def test_staff_without_the_review_permission_cannot_reopen(
    make_case: Callable[..., ReviewCase], moderator: User
) -> None:
    case = make_case()
    services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)
    clerk = StaffFactory.create(username="clerk")
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_submission", "view_reviewcase"])
    )
    client = Client()
    client.force_login(clerk)
    changelist = reverse("admin:moderation_reviewcase_changelist")
    assert client.get(changelist).status_code == 200
    client.post(changelist, {"action": "reopen_case", "_selected_action": [str(case.pk)]})
    assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.CONFIRMED


def test_event_list_searches_by_uploader_and_sha256(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case()
    url = reverse("admin:moderation_reviewevent_changelist")
    for query in ("uploader", case.submission.sha256):
        response = admin_client_for.get(url, {"q": query})
        assert [event.case_id for event in response.context["cl"].result_list] == [case.pk]


def test_face_list_shows_crops_and_searches_by_uploader_and_sha256(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case(faces=2)
    other = make_case(uploader=StaffFactory.create(username="someone-else"))
    url = reverse("admin:detection_face_changelist")
    html = admin_client_for.get(url).content.decode()
    assert reverse("detection:face-crop", args=[case.submission_id, 1]) in html
    for query, expected in (("someone-else", other), (case.submission.sha256, case)):
        response = admin_client_for.get(url, {"q": query})
        found = {face.submission_id for face in response.context["cl"].result_list}
        assert found == {expected.submission_id}


def test_scores_and_boxes_are_readable_and_faces_cannot_be_deleted(
    admin_client_for: Client, make_case: Callable[..., ReviewCase]
) -> None:
    case = make_case(faces=1, fake_probability=0.912345678901234)
    face = case.submission.faces.get()
    Face = type(face)
    Face.objects.filter(pk=face.pk).update(
        fake_probability=0.912345678901234, box_x1=10.123456, box_y2=99.987654321
    )
    lists = [
        reverse("admin:detection_face_changelist"),
        reverse("admin:detection_submission_changelist"),
        reverse("admin:moderation_reviewcase_changelist"),
        reverse("admin:detection_submission_change", args=[case.submission_id]),
    ]
    for url in lists:
        html = admin_client_for.get(url).content.decode()
        assert "0.912" in html and "0.91234" not in html, url
    face_page = admin_client_for.get(reverse("admin:detection_face_change", args=[face.pk]))
    assert "10, " in face_page.content.decode() and "99.987" not in face_page.content.decode()
    delete = reverse("admin:detection_face_delete", args=[face.pk])
    assert admin_client_for.post(delete, {"post": "yes"}).status_code == 403
    assert Face.objects.filter(pk=face.pk).exists()
