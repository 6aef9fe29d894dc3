"""The decision log as CSV: every decision with its context, narrowed by the filters."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from detection.models import Submission
from moderation import services
from moderation.models import Decision, ReviewCase, ReviewEvent

pytestmark = pytest.mark.django_db


def _rows(response: HttpResponseBase) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="decision-log-')
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def decided(
    make_case: Callable[..., ReviewCase], moderator: User, other_moderator: User, staff: User
) -> dict[str, ReviewCase]:
    fake = make_case(fake_probability=0.93, original_filename="fake.jpg")
    services.review_case_decide(
        case=fake, user=moderator, decision=Decision.CONFIRM, note="=HYPERLINK(evil)"
    )
    real = make_case(
        verdict=Submission.Verdict.UNCERTAIN, fake_probability=0.41, original_filename="u.jpg"
    )
    services.review_case_decide(case=real, user=other_moderator, decision=Decision.CLEAR)
    services.review_case_reopen(case=real, user=staff, note="appeal")
    pending = make_case(fake_probability=0.7)
    services.review_case_claim_next(user=moderator)  # claims are not decisions
    return {"fake": fake, "real": real, "pending": pending}


def test_csv_lists_every_decision_with_its_context(
    client: Client, moderator: User, decided: dict[str, ReviewCase]
) -> None:
    client.force_login(moderator)
    rows = _rows(client.get(reverse("moderation:decision-log-csv")))
    assert [row["decision"] for row in rows] == ["reopened", "cleared", "confirmed"]
    confirmed = rows[2]
    fake = decided["fake"]
    assert confirmed == {
        "time": confirmed["time"],
        "decision": "confirmed",
        "moderator": "moderator",
        "note": "'=HYPERLINK(evil)",
        "case": str(fake.pk),
        "submission": str(fake.submission_id),
        "sha256": fake.submission.sha256,
        "uploader": "uploader",
        "model_verdict": "fake",
        "fake_probability": "0.9300",
        "case_state_now": "confirmed",
    }
    assert rows[1]["moderator"] == "other-moderator" and rows[1]["note"] == ""
    assert rows[0]["moderator"] == "staff" and rows[0]["note"] == "appeal"
    assert rows[0]["case_state_now"] == "pending"


def test_csv_filters_by_moderator_decision_and_verdict(
    client: Client, moderator: User, decided: dict[str, ReviewCase]
) -> None:
    client.force_login(moderator)
    url = reverse("moderation:decision-log-csv")
    by_moderator = _rows(client.get(url, {"moderator": "other-moderator"}))
    assert [(r["decision"], r["moderator"]) for r in by_moderator] == [
        ("cleared", "other-moderator")
    ]
    assert [r["decision"] for r in _rows(client.get(url, {"kind": "confirmed"}))] == ["confirmed"]
    uncertain = _rows(client.get(url, {"verdict": "uncertain"}))
    assert {r["case"] for r in uncertain} == {str(decided["real"].pk)}


def test_csv_filters_by_date_range(
    client: Client, moderator: User, decided: dict[str, ReviewCase]
) -> None:
    client.force_login(moderator)
    url = reverse("moderation:decision-log-csv")
    today = timezone.localdate()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    assert len(_rows(client.get(url, {"since": str(today), "until": str(today)}))) == 3
    assert _rows(client.get(url, {"since": str(tomorrow)})) == []
    assert _rows(client.get(url, {"until": str(yesterday)})) == []


def test_csv_with_invalid_filters_is_a_400_not_everything(
    client: Client, moderator: User, decided: dict[str, ReviewCase]
) -> None:
    client.force_login(moderator)
    response = client.get(
        reverse("moderation:decision-log-csv"), {"since": "2026-02-01", "until": "2026-01-01"}
    )
    assert response.status_code == 400
    assert b"start date is after the end date" in response.content


def test_decision_log_page_links_its_filters_to_the_csv(
    client: Client, moderator: User, decided: dict[str, ReviewCase]
) -> None:
    client.force_login(moderator)
    page = client.get(reverse("moderation:decision-log"), {"kind": "cleared"})
    assert page.status_code == 200
    assert [event.kind for event in page.context["page"].object_list] == ["cleared"]
    assert reverse("moderation:decision-log-csv") + "?kind=cleared" in page.content.decode()
    assert ReviewEvent.objects.filter(kind=ReviewEvent.Kind.CLAIMED).exists()
