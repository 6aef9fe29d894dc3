"""PDQ hashes: computed from the decoded, upright pixels of every upload, close for re-encoded
copies, far for other photos, and looked up in the database (SQL on PostgreSQL)."""

from __future__ import annotations

import io
import random
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import TEST_FRAMES
from detection import services
from detection.models import Submission
from detection.pdq import (
    PDQ_BITS,
    pdq_distance,
    pdq_hash,
    pdq_hex_normalise,
    pdq_word_keys,
    pdq_words,
)
from detection.pdq_db import pdq_distances
from detection.selectors import submissions_near
from detection.tests.factories import SubmissionFactory, UserFactory

FRAMES = sorted(TEST_FRAMES.glob("*.jpg"))


def reencoded(path: Path, *, quality: int = 70, scale: float = 0.9) -> Image.Image:
    image = Image.open(path).convert("RGB")
    smaller = image.resize((round(image.width * scale), round(image.height * scale)))
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_a_reencoded_resized_copy_stays_near_and_other_photos_stay_far() -> None:
    hashes = {path: pdq_hash(Image.open(path).convert("RGB")) for path in FRAMES}
    for path, original in hashes.items():
        assert original.quality == 100
        assert pdq_distance(original.hex, pdq_hash(reencoded(path)).hex) <= 12, path.name
    for path, original in hashes.items():
        for other, theirs in hashes.items():
            if other != path:
                assert pdq_distance(original.hex, theirs.hex) > 31, (path.name, other.name)


def test_a_flat_image_hashes_with_low_quality() -> None:
    assert pdq_hash(Image.new("RGB", (300, 200), "gray")).quality < 50


@pytest.mark.django_db
def test_every_upload_stores_the_hash_of_its_upright_pixels() -> None:
    upright = Image.open(FRAMES[0]).convert("RGB")
    # Stored lying on its side, with the EXIF orientation that turns it upright; PNG keeps
    # the pixels exactly, so the hash must be the upright picture's own.
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° clockwise to view
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_270).save(buffer, format="PNG", exif=exif.tobytes())
    with mock.patch("detection.tasks.analyze_submission.delay"):
        submission = services.submission_create(
            uploader=UserFactory.create(), data=buffer.getvalue(), filename="side.png"
        ).submission
    stored = Submission.objects.get(pk=submission.pk)
    assert stored.pdq == pdq_hash(upright).hex
    assert stored.pdq_quality == 100
    assert (
        pdq_distance(stored.pdq, pdq_hash(upright.transpose(Image.Transpose.ROTATE_270)).hex) > 31
    )


def test_hex_text_is_checked_and_normalised() -> None:
    assert pdq_hex_normalise(" " + "AB" * 32 + "\n") == "ab" * 32
    for bad in ("ab" * 31, "zz" * 32, "ab" * 33, ""):
        with pytest.raises(ValueError, match="not a PDQ hash"):
            pdq_hex_normalise(bad)


@settings(max_examples=300, deadline=None)
@given(
    value=st.integers(min_value=0, max_value=2**PDQ_BITS - 1),
    flipped=st.sets(st.integers(min_value=0, max_value=PDQ_BITS - 1), max_size=31),
)
def test_every_hash_within_31_bits_shares_an_index_key_with_the_query(
    value: int, flipped: set[int]
) -> None:
    query = f"{value:064x}"
    copy = f"{value ^ sum(1 << bit for bit in flipped):064x}"
    keys = pdq_word_keys(query, 31)
    assert keys is not None and len(keys) == 16 * 17
    assert set(keys) & set(pdq_words(copy))


def test_distances_too_large_for_the_index_scan_every_row() -> None:
    assert pdq_word_keys("00" * 32, 47) is not None
    assert pdq_word_keys("00" * 32, 48) is None


@pytest.mark.django_db
def test_the_database_lookup_finds_exactly_the_hashes_within_the_distance() -> None:
    rng = random.Random(7)
    query = f"{rng.getrandbits(PDQ_BITS):064x}"
    expected = {}
    for bits in (0, 1, 15, 16, 17, 30, 31, 32, 33, 60):
        mask = sum(1 << bit for bit in rng.sample(range(PDQ_BITS), bits))
        submission = SubmissionFactory.create(pdq=f"{int(query, 16) ^ mask:064x}", pdq_quality=90)
        if bits <= 31:
            expected[submission.pk] = bits
    SubmissionFactory.create_batch(200, pdq=None)
    for _ in range(200):
        SubmissionFactory.create(pdq=f"{rng.getrandbits(PDQ_BITS):064x}", pdq_quality=90)
    # Too flat to match, however close.
    SubmissionFactory.create(pdq=query, pdq_quality=10)

    with CaptureQueriesContext(connection) as captured:
        assert submissions_near(pdq=query) == expected
    if connection.vendor == "postgresql":
        # Computed in the database: only the matches come back.
        lookup = next(query["sql"] for query in captured if "bit_count(" in query["sql"])
        assert "&&" in lookup


@pytest.mark.django_db
def test_hashes_read_back_as_they_were_written() -> None:
    value = "0123456789abcdef" * 4
    submission = SubmissionFactory.create(pdq=value.upper(), pdq_quality=100)
    assert Submission.objects.get(pk=submission.pk).pdq == value
    assert Submission.objects.filter(pdq=value).get() == submission
    assert pdq_distances(Submission.objects.all(), field="pdq", pdq=value, max_distance=0) == {
        submission.pk: 0
    }


@pytest.mark.django_db
def test_a_lookup_leaves_the_planner_settings_of_the_callers_transaction_alone() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the index lookup and its planner setting are PostgreSQL's")
    with transaction.atomic(), connection.cursor() as cursor:
        submissions_near(pdq="ab" * 32)
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone()[0] == "on"
