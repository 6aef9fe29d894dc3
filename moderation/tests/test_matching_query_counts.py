"""Near-copies, clusters and banks keep the pages at a fixed number of queries (see
deepfake_site/tests/test_query_counts.py)."""

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
from moderation.tests.factories import StaffFactory, SubmissionFactory

pytestmark = pytest.mark.django_db

_rng = random.Random(30)


def random_pdq() -> str:
    return f"{_rng.getrandbits(PDQ_BITS):064x}"


def near(pdq: str, bits: int) -> str:
    return f"{int(pdq, 16) ^ sum(1 << bit for bit in _rng.sample(range(PDQ_BITS), bits)):064x}"


def analysed(pdq: str, uploader: User) -> Submission:
    submission: Submission = SubmissionFactory.create(pdq=pdq, pdq_quality=100, uploader=uploader)
    services.review_case_open(submission=submission)
    return submission


def test_the_queue_with_clusters_and_bank_matches(
    client: Client, uploader: User, moderator: User
) -> None:
    client.force_login(moderator)
    fakes = HashBank.objects.create(name="fakes", kind=HashBank.Kind.KNOWN_MANIPULATED)

    def add(count: int) -> None:
        for _ in range(count):
            base = random_pdq()
            services.hash_bank_import(bank=fakes, text=base, user=None)
            for bits in (1, 6, 11):
                analysed(near(base, bits), uploader)

    assert_fixed_query_count(client, reverse("moderation:queue"), add)


def test_the_case_page_with_near_copies_and_inherited_outcomes(
    client: Client, uploader: User, moderator: User, other_moderator: User
) -> None:
    client.force_login(moderator)
    base = random_pdq()
    case = ReviewCase.objects.get(submission=analysed(base, uploader))
    services.review_case_decide(case=case, user=other_moderator, decision=Decision.CONFIRM)
    fakes = HashBank.objects.create(name="fakes", kind=HashBank.Kind.KNOWN_MANIPULATED)

    def add(count: int) -> None:
        for _ in range(count):
            analysed(near(base, _rng.randint(1, 20)), uploader)  # inherits
            services.hash_bank_import(bank=fakes, text=near(base, 9), user=None)

    url = reverse("moderation:case-detail", kwargs={"case_id": case.pk})
    assert_fixed_query_count(client, url, add)


@pytest.mark.parametrize("changelist", ["moderation_hashbank", "moderation_hashbankentry"])
def test_hash_bank_admin_lists(client: Client, changelist: str) -> None:
    client.force_login(StaffFactory.create(is_superuser=True))

    def add(count: int) -> None:
        for _ in range(count):
            bank = HashBank.objects.create(
                name=f"bank {random_pdq()[:8]}", kind=HashBank.Kind.KNOWN_AUTHENTIC
            )
            services.hash_bank_import(
                bank=bank, text=f"{random_pdq()},a\n{random_pdq()},b", user=None
            )

    assert_fixed_query_count(client, reverse(f"admin:{changelist}_changelist"), add, bound=20)
