"""Near-copies (PDQ matches): decisions that follow an image, conflicts, and clusters of
pending near-copies decided at once."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from detection.models import Submission
from detection.pdq import PDQ_BITS
from moderation import selectors, services
from moderation.models import (
    Decision,
    HashBank,
    ImageMatch,
    InheritedOutcome,
    ReviewCase,
    ReviewEvent,
)
from moderation.tests.factories import SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

# Reproducible hashes: a base and copies of it with a few bits flipped.
_rng = random.Random(16)


def random_pdq() -> str:
    return f"{_rng.getrandbits(PDQ_BITS):064x}"


def near(pdq: str, bits: int) -> str:
    """The hash with `bits` random bits flipped: exactly that far from it."""
    return flip(pdq, _rng.sample(range(PDQ_BITS), bits))


def flip(pdq: str, bits: Iterable[int]) -> str:
    return f"{int(pdq, 16) ^ sum(1 << bit for bit in bits):064x}"


def analysed(
    pdq: str,
    *,
    verdict: str = Submission.Verdict.FAKE,
    fake_probability: float = 0.9,
    quality: int = 100,
    uploader: User | None = None,
) -> Submission:
    """A finished analysis of an image with this hash, routed as the worker routes it."""
    submission: Submission = SubmissionFactory.create(
        pdq=pdq,
        pdq_quality=quality,
        verdict=verdict,
        fake_probability=fake_probability,
        uploader=uploader or UserFactory.create(),
    )
    services.review_case_open(submission=submission)
    submission.refresh_from_db()
    return submission


def decided(pdq: str, moderator: User, decision: Decision = Decision.CONFIRM) -> ReviewCase:
    original = analysed(pdq)
    case = ReviewCase.objects.get(submission=original)
    note = "" if decision == Decision.CONFIRM else "Checked the source: authentic."
    return services.review_case_decide(case=case, user=moderator, decision=decision, note=note)


def outcome_of(submission: Submission) -> selectors.SubmissionOutcome | None:
    fresh = Submission.objects.select_related(*selectors.OUTCOME_RELATIONS).get(pk=submission.pk)
    return selectors.submission_outcome(submission=fresh)


# --- Decisions follow the image -------------------------------------------------------------


def test_a_near_copy_of_a_confirmed_image_inherits_the_outcome_without_a_case(
    moderator: User,
) -> None:
    base = random_pdq()
    source = decided(base, moderator)
    copy = analysed(near(base, 12), verdict=Submission.Verdict.UNCERTAIN)

    assert not ReviewCase.objects.filter(submission=copy).exists()
    outcome = outcome_of(copy)
    assert outcome is not None
    assert outcome.state == selectors.CONFIRMED_MANIPULATED
    assert outcome.inherited_from is not None
    assert outcome.inherited_from.source_case == source
    assert outcome.inherited_from.distance == 12
    assert ImageMatch.objects.get(submission=copy).matched_submission_id == source.submission_id


def test_a_copy_beyond_the_match_distance_is_reviewed_on_its_own(moderator: User) -> None:
    base = random_pdq()
    decided(base, moderator)
    other = analysed(near(base, 32))
    assert ReviewCase.objects.filter(submission=other, state=ReviewCase.State.PENDING).exists()
    assert not InheritedOutcome.objects.exists()
    assert not ImageMatch.objects.filter(submission=other).exists()


def test_images_with_too_little_detail_are_never_matched(moderator: User) -> None:
    base = random_pdq()
    decided(base, moderator)
    flat = analysed(base, quality=10)
    assert ReviewCase.objects.filter(submission=flat, state=ReviewCase.State.PENDING).exists()
    assert not ImageMatch.objects.filter(submission=flat).exists()


def test_a_cleared_decision_is_inherited_by_a_copy_the_model_calls_authentic(
    moderator: User,
) -> None:
    base = random_pdq()
    decided(base, moderator, Decision.CLEAR)
    copy = analysed(near(base, 3), verdict=Submission.Verdict.REAL, fake_probability=0.1)
    outcome = outcome_of(copy)
    assert outcome is not None and outcome.state == selectors.CLEARED and outcome.inherited


def test_a_copy_uploaded_by_the_moderator_who_decided_the_image_is_not_theirs_to_settle(
    moderator: User,
) -> None:
    base = random_pdq()
    decided(base, moderator)
    theirs = analysed(near(base, 3), uploader=moderator)
    case = ReviewCase.objects.get(submission=theirs)
    assert case.state == ReviewCase.State.PENDING
    assert "may not decide their own uploads" in case.reason
    assert not InheritedOutcome.objects.filter(submission=theirs).exists()


def test_the_model_contradicting_a_confirmed_copy_opens_a_conflict_case(moderator: User) -> None:
    base = random_pdq()
    source = decided(base, moderator)
    copy = analysed(near(base, 5), verdict=Submission.Verdict.REAL, fake_probability=0.05)

    case = ReviewCase.objects.get(submission=copy)
    assert case.state == ReviewCase.State.PENDING
    assert case.conflict_with == source
    assert "no manipulation" in case.reason and "confirmed manipulated" in case.reason
    assert case.events.get().note == case.reason
    assert not InheritedOutcome.objects.filter(submission=copy).exists()


def test_the_model_flagging_a_cleared_copy_opens_a_conflict_case(moderator: User) -> None:
    base = random_pdq()
    source = decided(base, moderator, Decision.CLEAR)
    copy = analysed(near(base, 5), verdict=Submission.Verdict.FAKE)
    case = ReviewCase.objects.get(submission=copy)
    assert case.conflict_with == source
    assert "cleared as authentic" in case.reason


def test_copies_decided_both_ways_make_a_conflict(moderator: User) -> None:
    base = random_pdq()
    decided(base, moderator, Decision.CONFIRM)
    # 40 bits from the first: no match, so reviewed on its own, and cleared.
    decided(flip(base, range(40)), moderator, Decision.CLEAR)
    # 20 bits from each: a near-copy of both.
    between = analysed(flip(base, range(20)), verdict=Submission.Verdict.UNCERTAIN)
    case = ReviewCase.objects.get(submission=between)
    assert "both ways" in case.reason
    assert ImageMatch.objects.filter(submission=between).count() == 2


def test_reopening_the_source_case_reopens_the_inherited_outcome(
    moderator: User, staff: User
) -> None:
    base = random_pdq()
    source = decided(base, moderator)
    copy = analysed(near(base, 4))
    services.review_case_reopen(case=source, user=staff, note="Second look.")
    outcome = outcome_of(copy)
    assert outcome is not None
    assert outcome.state == selectors.PENDING_REVIEW and outcome.inherited


def test_a_moderator_reopens_an_inherited_outcome_into_a_case_of_its_own(
    client: Client, moderator: User, other_moderator: User
) -> None:
    base = random_pdq()
    source = decided(base, other_moderator)
    copy = analysed(near(base, 4))
    client.force_login(moderator)

    page = client.get(reverse("detection:submission-detail", args=[copy.pk])).content.decode()
    assert "Inherited from" in page
    assert reverse("moderation:case-detail", args=[source.pk]) in page

    response = client.post(
        reverse("moderation:submission-reopen-inherited", args=[copy.pk]),
        {"note": "Cropped differently: judge it again."},
    )
    case = ReviewCase.objects.get(submission=copy)
    assert response.status_code == 302
    assert response["Location"] == reverse("moderation:case-detail", args=[case.pk])
    assert case.state == ReviewCase.State.PENDING
    opened = case.events.get()
    assert opened.actor == moderator
    assert str(source.pk) in opened.note and "Cropped differently" in opened.note
    outcome = outcome_of(copy)
    assert outcome is not None and outcome.state == selectors.PENDING_REVIEW
    assert not outcome.inherited
    with pytest.raises(ValidationError):
        services.review_case_reopen_inherited(submission=copy, user=moderator)


def test_the_uploader_sees_the_inherited_outcome_but_not_where_it_came_from(
    client: Client, moderator: User
) -> None:
    base = random_pdq()
    source = decided(base, moderator)
    copy = analysed(near(base, 4))
    client.force_login(copy.uploader)
    page = client.get(reverse("detection:submission-detail", args=[copy.pk])).content.decode()
    assert "confirmed manipulated" in page
    assert 'id="outcome-inherited"' in page
    assert str(source.pk) not in page
    assert 'id="reopen-inherited-form"' not in page
    assert (
        client.post(reverse("moderation:submission-reopen-inherited", args=[copy.pk])).status_code
        == 403
    )


def test_the_case_page_lists_near_copies_and_the_uploads_that_inherited(
    client: Client, moderator: User, other_moderator: User
) -> None:
    base = random_pdq()
    source = decided(base, other_moderator)
    copy = analysed(near(base, 6))
    client.force_login(moderator)
    page = client.get(reverse("moderation:case-detail", args=[source.pk])).content.decode()
    assert 'id="inherited-by"' in page and copy.original_filename in page
    assert 'id="near-copies"' in page and "6 bits" in page


# --- Clusters ---------------------------------------------------------------------------------


def three_pending_near_copies() -> list[ReviewCase]:
    base = random_pdq()
    submissions = [analysed(near(base, bits)) for bits in (0, 9, 17)]
    return [ReviewCase.objects.get(submission=submission) for submission in submissions]


def test_pending_near_copies_form_one_cluster(moderator: User) -> None:
    cases = three_pending_near_copies()
    lone = ReviewCase.objects.get(submission=analysed(random_pdq()))
    assert (
        len({case.cluster for case in ReviewCase.objects.filter(pk__in=[c.pk for c in cases])}) == 1
    )
    assert ReviewCase.objects.get(pk=cases[0].pk).cluster == cases[0].pk
    assert lone.cluster is None


def test_the_queue_shows_a_cluster_as_one_row_with_its_count(
    client: Client, moderator: User
) -> None:
    cases = three_pending_near_copies()
    analysed(random_pdq())
    client.force_login(moderator)
    response = client.get(reverse("moderation:queue"))
    rows = list(response.context["page"].object_list)
    assert len(rows) == 2
    clustered = next(row for row in rows if row.cluster_size == 3)
    assert clustered.pk in {case.pk for case in cases}
    assert 'data-cluster-size="3"' in response.content.decode()
    everything = client.get(reverse("moderation:queue"), {"state": "all"})
    assert len(everything.context["page"].object_list) == 4


def test_one_decision_settles_the_cluster_with_one_event_each(
    client: Client, moderator: User
) -> None:
    cases = three_pending_near_copies()
    client.force_login(moderator)
    response = client.post(
        reverse("moderation:case-decide", args=[cases[1].pk]),
        {"decision": Decision.CONFIRM, "note": "Same face swap."},
    )
    assert response.status_code == 302
    for case in cases:
        case.refresh_from_db()
        assert case.state == ReviewCase.State.CONFIRMED
        assert case.decided_by == moderator
        event = case.events.get(kind=ReviewEvent.Kind.CONFIRMED)
        assert event.note.startswith("Same face swap.")
        assert "One decision for 3 near-identical images" in event.note
    assert ReviewEvent.objects.filter(kind=ReviewEvent.Kind.CONFIRMED).count() == 3


def test_a_moderator_may_decide_only_the_case_in_front_of_them(
    client: Client, moderator: User
) -> None:
    cases = three_pending_near_copies()
    client.force_login(moderator)
    client.post(
        reverse("moderation:case-decide", args=[cases[0].pk]),
        {"decision": Decision.CONFIRM, "note": "", "only_this_case": "on"},
    )
    states = [ReviewCase.objects.get(pk=case.pk).state for case in cases]
    assert states == [
        ReviewCase.State.CONFIRMED,
        ReviewCase.State.PENDING,
        ReviewCase.State.PENDING,
    ]


def test_a_cluster_decision_skips_the_moderators_own_upload(moderator: User) -> None:
    base = random_pdq()
    theirs = analysed(near(base, 2), uploader=moderator)
    others = [analysed(near(base, bits)) for bits in (5, 7)]
    first = ReviewCase.objects.get(submission=others[0])
    result = services.review_case_decide_cluster(
        case=first, user=moderator, decision=Decision.CONFIRM
    )
    assert len(result.changed) == 2
    assert [case.submission_id for case, _ in result.refused] == [theirs.pk]
    assert ReviewCase.objects.get(submission=theirs).state == ReviewCase.State.PENDING


def test_a_note_owed_by_one_near_copy_is_owed_for_the_cluster(moderator: User) -> None:
    base = random_pdq()
    bank = HashBank.objects.create(name="fakes", kind=HashBank.Kind.KNOWN_MANIPULATED)
    services.hash_bank_import(bank=bank, text=base, user=None)
    # The bank opens cases for both; confirming the `real` one goes against the model.
    flagged = analysed(near(base, 2))
    analysed(near(base, 4), verdict=Submission.Verdict.REAL, fake_probability=0.1)
    with pytest.raises(ValidationError, match="note"):
        services.review_case_decide_cluster(
            case=ReviewCase.objects.get(submission=flagged),
            user=moderator,
            decision=Decision.CONFIRM,
        )
    assert not ReviewCase.objects.filter(state=ReviewCase.State.CONFIRMED).exists()


def test_bulk_decisions_settle_the_clusters_of_the_selected_rows(
    client: Client, moderator: User
) -> None:
    cases = three_pending_near_copies()
    client.force_login(moderator)
    client.post(
        reverse("moderation:bulk-decide"),
        {"cases": [str(cases[0].pk)], "decision": Decision.CONFIRM, "note": ""},
    )
    assert ReviewCase.objects.filter(state=ReviewCase.State.CONFIRMED).count() == 3


def test_a_new_copy_of_a_decided_cluster_inherits(moderator: User) -> None:
    cases = three_pending_near_copies()
    services.review_case_decide_cluster(case=cases[0], user=moderator, decision=Decision.CONFIRM)
    later = analysed(near(cases[0].submission.pdq or "", 10))
    assert not ReviewCase.objects.filter(submission=later).exists()
    assert InheritedOutcome.objects.get(submission=later).source_case.state == "confirmed"


def test_clusters_merge_when_a_copy_links_them() -> None:
    base = random_pdq()
    left = analysed(near(base, 0))
    # 40 bits from `left` (too far), each within 31 of the bridge below.
    right = analysed(flip(base, range(40)))
    assert ReviewCase.objects.get(submission=left).cluster is None
    bridge = analysed(flip(base, range(20)))
    clusters = set(
        ReviewCase.objects.filter(submission__in=[left, right, bridge]).values_list(
            "cluster", flat=True
        )
    )
    assert len(clusters) == 1 and None not in clusters
