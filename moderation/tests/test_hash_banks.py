"""Hash banks: kept by staff in the admin, imported and exported as text, and routing the
uploads that match them; confirmed images added from the case page."""

from __future__ import annotations

import io
import random
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from PIL import Image

from conftest import TEST_FRAMES
from detection import services as detection_services
from detection.models import Submission
from detection.pdq import PDQ_BITS, pdq_hash
from moderation import services
from moderation.models import (
    Decision,
    HashBank,
    HashBankEntry,
    ImageMatch,
    ReviewCase,
    ReviewEvent,
)
from moderation.tests.factories import StaffFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

_rng = random.Random(4)


def random_pdq() -> str:
    return f"{_rng.getrandbits(PDQ_BITS):064x}"


def near(pdq: str, bits: int) -> str:
    return f"{int(pdq, 16) ^ sum(1 << bit for bit in _rng.sample(range(PDQ_BITS), bits)):064x}"


def bank(kind: str = HashBank.Kind.KNOWN_MANIPULATED, name: str = "") -> HashBank:
    return HashBank.objects.create(name=name or f"bank {kind}", kind=kind)


def analysed(pdq: str, verdict: str = Submission.Verdict.REAL, p: float = 0.1) -> Submission:
    submission: Submission = SubmissionFactory.create(
        pdq=pdq, pdq_quality=100, verdict=verdict, fake_probability=p
    )
    services.review_case_open(submission=submission)
    return submission


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(StaffFactory.create(is_superuser=True))
    return client


# --- Text import and export -------------------------------------------------------------------


def test_a_bank_imported_from_text_exports_the_same_text(admin_client: Client) -> None:
    fakes = bank()
    first, second, third = random_pdq(), random_pdq(), random_pdq()
    text = f"{first},viral swap, March 2024\n{second}\n{third},ThreatExchange 1234\n"
    response = admin_client.post(
        reverse("admin:moderation_hashbank_import", args=[fakes.pk]), {"text": text}
    )
    assert response.status_code == 302
    assert list(fakes.entries.order_by("id").values_list("pdq", "label")) == [
        (first, "viral swap, March 2024"),
        (second, ""),
        (third, "ThreatExchange 1234"),
    ]
    exported = admin_client.get(reverse("admin:moderation_hashbank_export", args=[fakes.pk]))
    assert exported["Content-Type"] == "text/plain; charset=utf-8"
    assert "attachment" in exported["Content-Disposition"]
    assert exported.content.decode() == text


def test_import_takes_a_file_skips_comments_and_hashes_already_there(
    admin_client: Client,
) -> None:
    fakes = bank()
    known = random_pdq()
    services.hash_bank_import(bank=fakes, text=f"{known},first label", user=None)
    new = random_pdq()
    upload = io.BytesIO(f"# exported by HMA\n\n{known.upper()},other label\n{new}\n".encode())
    upload.name = "bank.txt"
    admin_client.post(
        reverse("admin:moderation_hashbank_import", args=[fakes.pk]), {"file": upload}
    )
    assert dict(fakes.entries.values_list("pdq", "label")) == {known: "first label", new: ""}


def test_a_line_that_is_not_a_hash_refuses_the_whole_import(admin_client: Client) -> None:
    fakes = bank()
    text = f"{random_pdq()}\nnot-a-hash,label\n{random_pdq()[:-1]}\n"
    response = admin_client.post(
        reverse("admin:moderation_hashbank_import", args=[fakes.pk]), {"text": text}
    )
    assert response.status_code == 200
    assert "on line 2, 3; nothing was imported" in response.content.decode()
    assert not HashBankEntry.objects.exists()


def test_the_bank_admin_links_its_text_tools(admin_client: Client) -> None:
    fakes = bank()
    page = admin_client.get(reverse("admin:moderation_hashbank_change", args=[fakes.pk]))
    assert reverse("admin:moderation_hashbank_import", args=[fakes.pk]) in page.content.decode()
    entries = admin_client.get(
        reverse("admin:moderation_hashbankentry_changelist"), {"q": random_pdq().upper()}
    )
    assert entries.status_code == 200


def test_only_staff_with_the_permission_import(client: Client) -> None:
    fakes = bank()
    staff = StaffFactory.create()
    staff.user_permissions.add(
        Permission.objects.get(codename="change_hashbank"),
        Permission.objects.get(codename="view_hashbank"),
    )
    client.force_login(staff)
    url = reverse("admin:moderation_hashbank_import", args=[fakes.pk])
    assert client.post(url, {"text": random_pdq()}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="add_hashbankentry"))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached on the user
    client.force_login(staff)
    assert client.post(url, {"text": random_pdq()}).status_code == 302


# --- Routing ----------------------------------------------------------------------------------


def test_a_bank_imported_from_text_flags_a_matching_upload() -> None:
    """A re-encoded copy of a banked photo, uploaded the ordinary way: the model finds no
    manipulation, yet the bank match opens a case above every other, saying why."""
    original = TEST_FRAMES / "fake_frame_3.jpg"
    fakes = bank(name="Known face swaps")
    services.hash_bank_import(
        bank=fakes,
        text=f"{pdq_hash(Image.open(original).convert('RGB')).hex},swap from the March campaign",
        user=None,
    )
    image = Image.open(original).convert("RGB")
    buffer = io.BytesIO()
    image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(buffer, "JPEG", quality=70)
    with mock.patch("detection.tasks.analyze_submission.delay"):
        submission = detection_services.submission_create(
            uploader=UserFactory.create(), data=buffer.getvalue(), filename="copy.jpg"
        ).submission
    busiest = analysed(random_pdq(), verdict=Submission.Verdict.FAKE, p=0.99)
    # What the worker does once the model has said `real`.
    Submission.objects.filter(pk=submission.pk).update(
        status=Submission.Status.DONE, verdict=Submission.Verdict.REAL, fake_probability=0.05
    )
    submission.refresh_from_db()
    case = services.review_case_open(submission=submission)

    assert case is not None and case.state == ReviewCase.State.PENDING
    assert case.known_manipulated_match
    assert "Known face swaps" in case.reason and "swap from the March campaign" in case.reason
    assert case.priority > ReviewCase.objects.get(submission=busiest).priority
    assert ReviewCase.objects.order_by("-priority").first() == case
    match = ImageMatch.objects.get(submission=submission, bank_entry__isnull=False)
    assert match.distance <= 12


def test_a_known_authentic_match_keeps_an_uncertain_image_out_of_the_queue() -> None:
    authentic = bank(HashBank.Kind.KNOWN_AUTHENTIC)
    base = random_pdq()
    services.hash_bank_import(bank=authentic, text=base, user=None)
    submission = analysed(near(base, 5), verdict=Submission.Verdict.UNCERTAIN, p=0.4)
    assert not ReviewCase.objects.filter(submission=submission).exists()
    assert ImageMatch.objects.get(submission=submission).bank_entry.bank == authentic  # type: ignore[union-attr]


def test_a_known_authentic_match_still_opens_a_case_when_the_model_flags_it() -> None:
    authentic = bank(HashBank.Kind.KNOWN_AUTHENTIC, name="Press agency originals")
    base = random_pdq()
    services.hash_bank_import(bank=authentic, text=base, user=None)
    submission = analysed(near(base, 5), verdict=Submission.Verdict.FAKE, p=0.9)
    case = ReviewCase.objects.get(submission=submission)
    assert "Press agency originals" in case.reason and "likely manipulated" in case.reason
    assert not case.known_manipulated_match


def test_a_cleared_copy_matching_a_manipulated_bank_is_a_conflict(moderator: User) -> None:
    base = random_pdq()
    first = analysed(base, verdict=Submission.Verdict.FAKE, p=0.8)
    cleared = services.review_case_decide(
        case=ReviewCase.objects.get(submission=first),
        user=moderator,
        decision=Decision.CLEAR,
        note="Original from the agency.",
    )
    services.hash_bank_import(bank=bank(), text=near(base, 2), user=None)
    copy = analysed(near(base, 4), verdict=Submission.Verdict.REAL)
    case = ReviewCase.objects.get(submission=copy)
    assert case.conflict_with == cleared and case.known_manipulated_match
    assert "cleared as authentic" in case.reason


# --- Adding a confirmed image from the case page ----------------------------------------------


def confirmed_case(moderator: User) -> ReviewCase:
    submission = analysed(random_pdq(), verdict=Submission.Verdict.FAKE, p=0.9)
    case = ReviewCase.objects.get(submission=submission)
    return services.review_case_decide(case=case, user=moderator, decision=Decision.CONFIRM)


def test_staff_add_a_confirmed_image_to_a_bank_from_the_case_page(
    client: Client, moderator: User, staff: User
) -> None:
    fakes = bank(name="Confirmed swaps")
    bank(HashBank.Kind.KNOWN_AUTHENTIC)
    case = confirmed_case(moderator)
    client.force_login(staff)
    page = client.get(reverse("moderation:case-detail", args=[case.pk])).content.decode()
    assert 'id="add-to-bank-form"' in page
    assert "bank known_authentic" not in page  # only known-manipulated banks are offered

    response = client.post(
        reverse("moderation:case-add-to-bank", args=[case.pk]),
        {"bank": fakes.pk, "label": "campaign  #12"},
    )
    assert response.status_code == 302
    entry = HashBankEntry.objects.get()
    assert (entry.bank, entry.pdq, entry.label) == (fakes, case.submission.pdq, "campaign #12")
    assert entry.source_case == case and entry.added_by == staff
    event = case.events.get(kind=ReviewEvent.Kind.ADDED_TO_BANK)
    assert event.actor == staff and "Confirmed swaps" in event.note
    # A later copy the model also flags inherits the decision on the image, which comes
    # before the bank it is now in.
    later = analysed(near(case.submission.pdq or "", 6), verdict=Submission.Verdict.FAKE, p=0.8)
    assert not ReviewCase.objects.filter(submission=later).exists()
    assert ImageMatch.objects.filter(submission=later, bank_entry=entry).exists()


def test_adding_to_a_bank_is_refused_where_it_should_be(moderator: User, staff: User) -> None:
    fakes, authentic = bank(), bank(HashBank.Kind.KNOWN_AUTHENTIC)
    case = confirmed_case(moderator)
    with pytest.raises(ValidationError, match="Only staff"):
        services.hash_bank_add_from_case(case=case, bank=fakes, user=moderator)
    with pytest.raises(ValidationError, match="known-manipulated bank"):
        services.hash_bank_add_from_case(case=case, bank=authentic, user=staff)
    pending = ReviewCase.objects.get(
        submission=analysed(random_pdq(), verdict=Submission.Verdict.FAKE, p=0.9)
    )
    with pytest.raises(ValidationError, match="confirmed manipulated"):
        services.hash_bank_add_from_case(case=pending, bank=fakes, user=staff)
    own = SubmissionFactory.create(uploader=staff, pdq=random_pdq(), pdq_quality=100)
    own_case = services.review_case_open(submission=own)
    assert own_case is not None
    services.review_case_decide(case=own_case, user=moderator, decision=Decision.CONFIRM)
    with pytest.raises(ValidationError, match="You uploaded this photo"):
        services.hash_bank_add_from_case(case=own_case, bank=fakes, user=staff)
    services.hash_bank_add_from_case(case=case, bank=fakes, user=staff)
    with pytest.raises(ValidationError, match="already holds"):
        services.hash_bank_add_from_case(case=case, bank=fakes, user=staff)
    assert HashBankEntry.objects.count() == 1
