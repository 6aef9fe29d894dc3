"""Review cases for flagged submissions and their append-only audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone

from detection.models import Submission
from detection.pdq_db import PdqHashField, PdqWordsField


class Decision(models.TextChoices):
    """What a moderator can do with an open case (release is not a decision)."""

    CONFIRM = "confirm", "Confirm manipulated"
    CLEAR = "clear", "Mark authentic"
    ESCALATE = "escalate", "Escalate to staff"


class ReviewCase(models.Model):
    """One per submission the model flagged, or sampled for a quality check: the
    moderators' unit of work.

    The verdict, probability and face count are a snapshot of the analysis that a moderator
    judges; they are refreshed while the case is open and frozen once it is decided, so the
    metrics compare each decision with what the model said at the time.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ESCALATED = "escalated", "Escalated to staff"
        CONFIRMED = "confirmed", "Confirmed manipulated"
        CLEARED = "cleared", "Cleared as authentic"

    class Kind(models.TextChoices):
        FLAGGED = "flagged", "Flagged by the model"
        # A share of the photos the model found nothing in: their decisions measure what it
        # misses, which no flagged case can show.
        QA = "qa", "Quality check"

    OPEN_STATES = (State.PENDING, State.ESCALATED)
    DECIDED_STATES = (State.CONFIRMED, State.CLEARED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # One case per submission for its whole life: a re-analysis refreshes the open case or
    # leaves the human decision standing, and a reopen reuses the case, so the unique key
    # is what makes opening idempotent.
    submission = models.OneToOneField(
        Submission, on_delete=models.CASCADE, related_name="review_case"
    )
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, db_index=True
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FLAGGED)
    priority = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=12, choices=Submission.Verdict.choices)
    fake_probability = models.FloatField()
    face_count = models.PositiveSmallIntegerField(default=0)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    # A claim is a lease, not a state: when it lapses the case is simply unclaimed again.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # Double review: a sampled decision becomes the first of two; a different moderator,
    # who is not shown it, makes the second; agreement decides, disagreement goes to staff.
    review_round = models.PositiveSmallIntegerField(default=1)
    first_decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    first_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    second_decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    second_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Open cases whose images are near-copies of each other (PDQ) form a cluster named by
    # the id of one of them; empty for a case alone. The queue shows a cluster as one row,
    # and one decision settles every open case in it.
    cluster = models.UUIDField(null=True, blank=True, db_index=True)
    # Why the case opened beyond the model's verdict: a hash bank match, a conflict with an
    # earlier decision on a near-copy, a moderator reopening an inherited outcome.
    reason = models.TextField(blank=True)
    # The decided near-copy whose outcome this image would have inherited, had the model's
    # verdict or a hash bank not contradicted it: the case is a conflict.
    conflict_with = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="conflicts"
    )
    # The image matched a `known manipulated` hash bank: queued above every other case.
    known_manipulated_match = models.BooleanField(default=False)

    class Meta:
        ordering = ("-priority", "opened_at")
        # The same row migration 0001 created for the moderators group.
        permissions = [("review_cases", "Can work the moderation review queue")]
        indexes = [models.Index(fields=("state", "-priority", "opened_at"))]

    def __str__(self) -> str:
        return f"Case for {self.submission_id} ({self.get_state_display()})"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    def lease_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return bool(
            self.claimed_by_id and self.lease_expires_at is not None and self.lease_expires_at > now
        )

    @property
    def awaiting_second_review(self) -> bool:
        return self.review_round == 2 and self.state == self.State.PENDING


class ReviewEventIsAppendOnly(Exception):
    """Raised by every path that would change or remove an audit event."""


class ReviewEventQuerySet(models.QuerySet["ReviewEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise ReviewEventIsAppendOnly("review events cannot be updated")

    def delete(self) -> NoReturn:
        raise ReviewEventIsAppendOnly("review events cannot be deleted")


ReviewEventManager = models.Manager.from_queryset(ReviewEventQuerySet)


class ReviewEvent(models.Model):
    """Who did what to a case, when, and why. Rows are only ever inserted."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        CLAIMED = "claimed", "Claimed"
        RELEASED = "released", "Released"
        LEASE_EXPIRED = "lease_expired", "Lease expired"
        CONFIRMED = "confirmed", "Confirmed manipulated"
        CLEARED = "cleared", "Marked authentic"
        ESCALATED = "escalated", "Escalated to staff"
        REOPENED = "reopened", "Reopened"
        SECOND_REVIEW = "second_review", "Sent for a second review"
        ADDED_TO_BANK = "added_to_bank", "Added to a hash bank"

    DECISION_KINDS = (Kind.CONFIRMED, Kind.CLEARED, Kind.ESCALATED)

    # PROTECT everywhere: deleting a case, a submission or a user must not silently take
    # audit rows with it (a cascade would bypass the queryset guard below).
    case = models.ForeignKey(ReviewCase, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    # The moderator who acted, or whose lease lapsed; empty for the system (opening).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="review_events",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ReviewEventManager()

    class Meta:
        ordering = ("created_at", "id")
        # Related managers and cascades go through the base manager: make it the guarded one.
        base_manager_name = "objects"
        # Nobody, admin included, can be granted the right to add, change or delete events.
        default_permissions = ("view",)
        indexes = [models.Index(fields=("kind", "created_at"))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.case_id} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise ReviewEventIsAppendOnly("review events cannot be updated")
        # An INSERT or an error, never the UPDATE Django tries first when a pk is given.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReviewEventIsAppendOnly("review events cannot be deleted")


BANK_LABEL_MAX_LENGTH = 255


class HashBank(models.Model):
    """A named list of PDQ hashes staff keep, exchanged as text with other tools (HMA,
    ThreatExchange): a match routes a new upload (moderation.services)."""

    class Kind(models.TextChoices):
        KNOWN_MANIPULATED = "known_manipulated", "Known manipulated"
        KNOWN_AUTHENTIC = "known_authentic", "Known authentic"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display().lower()})"


class HashBankEntry(models.Model):
    bank = models.ForeignKey(HashBank, on_delete=models.CASCADE, related_name="entries")
    pdq = PdqHashField()
    pdq_words = PdqWordsField(source="pdq")  # the hash's index keys (PostgreSQL)
    # Free text kept with the hash (one line: the text format puts it after a comma).
    label = models.CharField(max_length=BANK_LABEL_MAX_LENGTH, blank=True)
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The decided case the hash was taken from, when it was added from a case page.
    source_case = models.ForeignKey(
        ReviewCase, on_delete=models.SET_NULL, null=True, blank=True, related_name="bank_entries"
    )

    class Meta:
        ordering = ("bank", "id")
        verbose_name_plural = "hash bank entries"
        constraints = [
            models.UniqueConstraint(fields=("bank", "pdq"), name="one_entry_per_bank_and_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.pdq[:16]}… in {self.bank.name}"


class ImageMatch(models.Model):
    """A near-copy found when a submission's analysis was stored: another submission or a
    bank entry whose PDQ hash is within PDQ_MATCH_DISTANCE bits of the submission's."""

    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="image_matches"
    )
    matched_submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, null=True, blank=True, related_name="matched_by"
    )
    bank_entry = models.ForeignKey(
        HashBankEntry, on_delete=models.CASCADE, null=True, blank=True, related_name="matches"
    )
    distance = models.PositiveSmallIntegerField()
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("distance", "id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(matched_submission__isnull=False, bank_entry__isnull=True)
                | models.Q(matched_submission__isnull=True, bank_entry__isnull=False),
                name="match_is_a_submission_or_a_bank_entry",
            ),
            models.UniqueConstraint(
                fields=("submission", "matched_submission"), name="one_match_per_submission_pair"
            ),
            models.UniqueConstraint(
                fields=("submission", "bank_entry"), name="one_match_per_bank_entry"
            ),
        ]

    def __str__(self) -> str:
        other = self.matched_submission_id or f"bank entry {self.bank_entry_id}"
        return f"{self.submission_id} ~ {other} ({self.distance} bits)"


class InheritedOutcome(models.Model):
    """A submission that needs no review of its own: it is a near-copy of an image that a
    moderator already decided, and shows that case's outcome (decisions follow the image).

    A case of its own, once opened (a moderator reopening it), takes precedence.
    """

    submission = models.OneToOneField(
        Submission, on_delete=models.CASCADE, related_name="inherited_outcome"
    )
    source_case = models.ForeignKey(
        ReviewCase, on_delete=models.PROTECT, related_name="inherited_by"
    )
    distance = models.PositiveSmallIntegerField()
    inherited_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.submission_id} inherits case {self.source_case_id}"
