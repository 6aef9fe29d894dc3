"""The API's near-copy fields: `pdq` and `provenance` for everyone who sees a submission,
whether its outcome was inherited, and for moderators where from and its `matches`."""

from __future__ import annotations

import random

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from deepfake_site.tests.test_query_counts import assert_fixed_query_count
from detection.models import Submission
from detection.pdq import PDQ_BITS
from moderation import services
from moderation.models import Decision, HashBank, ReviewCase
from moderation.tests.factories import ModeratorFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

_rng = random.Random(18)


def random_pdq() -> str:
    return f"{_rng.getrandbits(PDQ_BITS):064x}"


def near(pdq: str, bits: int) -> str:
    return f"{int(pdq, 16) ^ sum(1 << bit for bit in _rng.sample(range(PDQ_BITS), bits)):064x}"


def analysed(pdq: str, uploader: User) -> Submission:
    submission: Submission = SubmissionFactory.create(
        pdq=pdq, pdq_quality=95, uploader=uploader, provenance={"exif": None}
    )
    services.review_case_open(submission=submission)
    return submission


@pytest.fixture
def decided_and_copy() -> tuple[ReviewCase, Submission]:
    base = random_pdq()
    original = analysed(base, UserFactory.create(username="first"))
    source = services.review_case_decide(
        case=ReviewCase.objects.get(submission=original),
        user=ModeratorFactory.create(),
        decision=Decision.CONFIRM,
    )
    fakes = HashBank.objects.create(name="swaps", kind=HashBank.Kind.KNOWN_MANIPULATED)
    services.hash_bank_import(bank=fakes, text=f"{near(base, 3)},from HMA", user=None)
    return source, analysed(near(base, 7), UserFactory.create(username="second"))


def test_the_uploader_sees_the_inherited_outcome_and_the_hash_but_no_matches(
    client: Client, decided_and_copy: tuple[ReviewCase, Submission]
) -> None:
    _, copy = decided_and_copy
    client.force_login(copy.uploader)
    body = client.get(reverse("api:submission-detail", args=[copy.pk])).json()
    assert body["pdq"] == copy.pdq and body["pdq_quality"] == 95
    assert body["provenance"] == {"exif": None}
    assert body["moderation"]["state"] == "confirmed_manipulated"
    assert body["moderation"]["inherited"] is True
    assert body["moderation"]["inherited_from"] is None
    assert body["matches"] is None


def test_moderators_see_where_the_outcome_came_from_and_every_match(
    client: Client, decided_and_copy: tuple[ReviewCase, Submission]
) -> None:
    source, copy = decided_and_copy
    client.force_login(ModeratorFactory.create())
    body = client.get(reverse("api:submission-detail", args=[copy.pk])).json()
    inherited = body["moderation"]["inherited_from"]
    assert inherited["case"] == str(source.pk)
    assert inherited["submission"] == str(source.submission_id)
    assert inherited["distance"] == 7
    assert inherited["case_url"].endswith(reverse("moderation:case-detail", args=[source.pk]))
    submission_match, bank_match = body["matches"]
    assert submission_match["kind"] == "submission"
    assert submission_match["submission"] == str(source.submission_id)
    assert submission_match["distance"] == 7
    assert submission_match["outcome"] == "confirmed_manipulated"
    assert submission_match["url"].endswith(
        reverse("api:submission-detail", args=[source.submission_id])
    )
    assert bank_match["kind"] == "bank"
    assert bank_match["bank"] == "swaps" and bank_match["bank_kind"] == "known_manipulated"
    assert bank_match["label"] == "from HMA"
    assert bank_match["distance"] <= 10
    # The original lists the later copy too.
    original = client.get(reverse("api:submission-detail", args=[source.submission_id])).json()
    assert [match["submission"] for match in original["matches"]] == [str(copy.pk)]
    assert original["moderation"]["inherited"] is False


def test_a_moderators_api_list_with_near_copies_costs_a_fixed_number_of_queries(
    client: Client,
) -> None:
    moderator = ModeratorFactory.create()
    other = UserFactory.create()
    client.force_login(moderator)

    def add(count: int) -> None:
        for _ in range(count):
            base = random_pdq()
            theirs = analysed(base, other)
            services.review_case_decide(
                case=ReviewCase.objects.get(submission=theirs),
                user=ModeratorFactory.create(),
                decision=Decision.CONFIRM,
            )
            analysed(near(base, 5), moderator)  # inherits, and matches `theirs`
            analysed(near(base, 9), other)  # a later copy that found the moderator's

    assert_fixed_query_count(client, reverse("api:submission-list"), add)
