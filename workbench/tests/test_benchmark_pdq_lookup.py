"""The PDQ lookup benchmark: it times the service's own lookup, checks it finds the planted
near-copies, and leaves the database as it found it."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from detection.models import Submission
from detection.tests.factories import SubmissionFactory

pytestmark = pytest.mark.django_db


def test_the_benchmark_times_lookups_finds_the_planted_copies_and_rolls_back() -> None:
    SubmissionFactory.create()
    stdout = io.StringIO()
    call_command(
        "benchmark_pdq_lookup", hashes=300, lookups=12, stdout=stdout, stderr=io.StringIO()
    )
    output = stdout.getvalue()
    assert f"PDQ lookup on {connection.vendor} with 300 stored hashes" in output
    assert re.search(r"per lookup: median [\d.]+ ms, p95 [\d.]+ ms", output)
    assert "planted near-copies found at their distance: 10 of 10" in output
    assert Submission.objects.count() == 1


def test_the_benchmark_needs_room_for_its_planted_copies() -> None:
    with pytest.raises(CommandError, match="at least 10"):
        call_command("benchmark_pdq_lookup", hashes=5, stdout=io.StringIO())
