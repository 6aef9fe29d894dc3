"""Time the PDQ near-copy lookup with many stored hashes, inside a transaction rolled back."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from detection.models import Submission
from detection.pdq import PDQ_BITS, pdq_distance
from detection.selectors import submissions_near

# The goal for one lookup among 100,000 stored hashes on PostgreSQL.
GOAL_MS = 50.0
BATCH = 5_000
# Queries that get one stored near-copy each, planted at a known distance, so the benchmark
# also checks that the lookup finds what it should.
PLANTED = 10


class Command(BaseCommand):
    help = (
        "Store N random PDQ hashes (100,000 by default) as submissions, time the near-copy "
        "lookup the service runs for each analysed image, check it finds planted near-copies, "
        "then roll everything back. Run it on PostgreSQL (DATABASE_URL=postgres://...): the "
        "distances are computed in SQL there; on SQLite the lookup is a scan in Python."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hashes", type=int, default=100_000, help="stored hashes")
        parser.add_argument("--lookups", type=int, default=100, help="timed lookups")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        stored, lookups = options["hashes"], options["lookups"]
        if stored < PLANTED or lookups < PLANTED:
            raise CommandError(f"--hashes and --lookups must be at least {PLANTED}")
        rng = random.Random(options["seed"])  # noqa: S311 (reproducible test data, not secrets)
        queries = [_random_hash(rng) for _ in range(lookups)]
        distance = settings.PDQ_MATCH_DISTANCE
        planted = {
            query: _flip_bits(query, rng.randint(0, distance), rng) for query in queries[:PLANTED]
        }
        with transaction.atomic():
            started = time.perf_counter()
            ids = self._store(stored, planted, rng)
            stored_in = time.perf_counter() - started
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Submission._meta.db_table}")
            for query in queries[:3]:  # warm the caches and the plan
                submissions_near(pdq=query)
            timings, found = [], 0
            for query in queries:
                began = time.perf_counter()
                near = submissions_near(pdq=query)
                timings.append((time.perf_counter() - began) * 1000)
                if query in planted:
                    expected = pdq_distance(query, planted[query])
                    found += near.get(ids[planted[query]]) == expected
            transaction.set_rollback(True)
        self._report(stored, timings, found, stored_in)

    def _store(self, count: int, planted: dict[str, str], rng: random.Random) -> dict[str, Any]:
        """Insert `count` submissions with random hashes (the planted ones among them);
        return the ids of the planted ones by hash."""
        user = User.objects.create(username=f"pdq-benchmark-{uuid.uuid4().hex[:12]}")
        hashes = list(planted.values()) + [_random_hash(rng) for _ in range(count - len(planted))]
        wanted = set(planted.values())
        ids: dict[str, Any] = {}
        for start in range(0, count, BATCH):
            rows = [
                Submission(
                    uploader=user,
                    sha256=uuid.uuid4().hex * 2,
                    pdq=value,
                    pdq_quality=100,
                    byte_size=1,
                    width=1,
                    height=1,
                    format="JPEG",
                    status=Submission.Status.DONE,
                )
                for value in hashes[start : start + BATCH]
            ]
            Submission.objects.bulk_create(rows)
            ids.update((row.pdq, row.pk) for row in rows if row.pdq in wanted)
        return ids

    def _report(self, stored: int, timings: list[float], found: int, stored_in: float) -> None:
        ordered = sorted(timings)
        median = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        how = (
            "candidates from the GIN index, distances in SQL"
            if connection.vendor == "postgresql"
            else "a scan in Python"
        )
        self.stdout.write(
            f"PDQ lookup on {connection.vendor} with {stored:,} stored hashes, {how}, "
            f"match distance <= {settings.PDQ_MATCH_DISTANCE}:"
        )
        self.stdout.write(
            f"  per lookup: median {median:.1f} ms, p95 {p95:.1f} ms, "
            f"mean {statistics.fmean(ordered):.1f} ms, fastest {ordered[0]:.1f} ms "
            f"over {len(ordered)} lookups"
        )
        verdict = "met" if median <= GOAL_MS else "missed"
        self.stdout.write(f"  goal <= {GOAL_MS:.0f} ms per lookup: {verdict}")
        self.stdout.write(f"  planted near-copies found at their distance: {found} of {PLANTED}")
        self.stdout.write(
            f"  (storing the hashes took {stored_in:.1f} s; all of it was rolled back)"
        )
        if found != PLANTED:
            raise CommandError("the lookup missed planted near-copies")


def _random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(PDQ_BITS):064x}"


def _flip_bits(value: str, count: int, rng: random.Random) -> str:
    mask = sum(1 << bit for bit in rng.sample(range(PDQ_BITS), count))
    return f"{int(value, 16) ^ mask:064x}"
