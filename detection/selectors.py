"""Reads for the detection app. Access rules live here so that every view shares them."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import (
    Case,
    Count,
    IntegerField,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce

from detection.ml.card import CardError, ModelCard, card_path, checkpoint_version, read_card
from detection.models import Submission, Track
from detection.pdq_db import pdq_distances
from moderation.models import ImageMatch
from moderation.rules import user_is_reviewer
from moderation.selectors import OUTCOME_RELATIONS


def submissions_visible_to(*, user: User | AnonymousUser) -> QuerySet[Submission]:
    """Moderators and staff may open any submission; uploaders only their own."""
    if not user.is_authenticated:
        return Submission.objects.none()
    if user_is_reviewer(user=user):
        return Submission.objects.all()
    return Submission.objects.filter(uploader=user)


def submission_get_for_user(
    *, submission_id: uuid.UUID, user: User | AnonymousUser
) -> Submission | None:
    """The submission if this user may see it; None otherwise (callers answer 404)."""
    submissions = submissions_visible_to(user=user).select_related("uploader")
    return submissions.filter(id=submission_id).first()


def submissions_with_results(
    submissions: QuerySet[Submission], *, with_near_copies: bool = False
) -> QuerySet[Submission]:
    """What the API shows of each submission, loaded with the list in a fixed number of
    queries: faces, tracks, moderation outcome (own or inherited), `queued_before` (the queue
    position when queued) and, for moderators, the near-copies both ways."""
    queued_before = (
        Submission.objects.filter(
            status=Submission.Status.QUEUED,
            queued_at__lt=OuterRef("queued_at"),
            media_type=OuterRef("media_type"),
        )
        .order_by()
        .values("status")
        .annotate(count=Count("pk"))
        .values("count")
    )
    if with_near_copies:
        submissions = submissions.prefetch_related(
            Prefetch(
                "image_matches",
                queryset=ImageMatch.objects.select_related(
                    *_outcome_relations_of("matched_submission"), "bank_entry__bank"
                ),
            ),
            Prefetch(
                "matched_by",
                queryset=ImageMatch.objects.select_related(*_outcome_relations_of("submission")),
            ),
        )
    return (
        submissions.select_related(*OUTCOME_RELATIONS)
        .prefetch_related("faces", "tracks")
        .annotate(
            queued_before=Case(
                When(status=Submission.Status.QUEUED, then=Coalesce(Subquery(queued_before), 0)),
                default=None,
                output_field=IntegerField(),
            )
        )
    )


def _outcome_relations_of(relation: str) -> list[str]:
    return [f"{relation}__{name}" for name in OUTCOME_RELATIONS]


def submission_tracks(*, submission: Submission) -> list[Track]:
    """A video's tracks in order, each with its most suspicious face."""
    return list(submission.tracks.select_related("face").order_by("index"))


def submission_list_for_user(
    *, user: User, status: str = "", verdict: str = ""
) -> QuerySet[Submission]:
    """The user's own submissions, newest first, optionally filtered."""
    submissions = Submission.objects.filter(uploader=user)
    if status:
        submissions = submissions.filter(status=status)
    if verdict:
        submissions = submissions.filter(verdict=verdict)
    return submissions.order_by("-queued_at")


def submission_queue_position(*, submission: Submission) -> int:
    """How many queued submissions will be analysed before this one: photos and videos wait
    in queues of their own."""
    if submission.status != Submission.Status.QUEUED:
        return 0
    return Submission.objects.filter(
        status=Submission.Status.QUEUED,
        queued_at__lt=submission.queued_at,
        media_type=submission.media_type,
    ).count()


@dataclass(frozen=True)
class RunningModel:
    """The configured checkpoint and what its model card says, as the page and the API show it."""

    checkpoint_name: str
    installed: bool
    version: str | None  # first digits of the checkpoint's sha256; None when not installed
    # Without a readable card, an untrained one: scores are then shown as meaning nothing.
    card: ModelCard
    card_problem: str | None  # why the card beside the checkpoint could not be read

    @property
    def flag_threshold(self) -> float:
        """The card's threshold; the site's setting only where the card sets none."""
        return self.card.thresholds.flag if self.card.thresholds else settings.FLAG_THRESHOLD

    @property
    def uncertain_threshold(self) -> float:
        thresholds = self.card.thresholds
        return thresholds.uncertain if thresholds else settings.UNCERTAIN_THRESHOLD


def running_model() -> RunningModel:
    checkpoint = Path(settings.DEEPFAKE_CHECKPOINT)
    installed = checkpoint.is_file()
    card_problem = None
    try:
        card = read_card(checkpoint)
    except CardError as exc:
        card, card_problem = None, str(exc)
    return RunningModel(
        checkpoint_name=checkpoint.name,
        installed=installed,
        version=checkpoint_version(checkpoint) if installed else None,
        card=card or ModelCard(name=checkpoint.stem, trained=False),
        card_problem=card_problem,
    )


def model_caution() -> str | None:
    """The running model's caution (see ModelCard.caution), from its card; None without one."""
    checkpoint = Path(settings.DEEPFAKE_CHECKPOINT)
    try:
        changed = card_path(checkpoint).stat().st_mtime_ns
    except OSError:
        return None
    return _caution_of(checkpoint, changed)


@functools.lru_cache(maxsize=4)
def _caution_of(checkpoint: Path, _card_changed: int) -> str | None:
    # Keyed on the card's change time: a list of many submissions reads the card once.
    try:
        card = read_card(checkpoint)
    except CardError:
        return None
    return card.caution() if card else None


def submissions_near(*, pdq: str, exclude_id: uuid.UUID | None = None) -> dict[uuid.UUID, int]:
    """The submissions whose image is a near-copy of a hash: PDQ within PDQ_MATCH_DISTANCE
    bits, quality at least PDQ_MIN_QUALITY (flat images hash alike). Ids with distances; on
    PostgreSQL computed in SQL (`manage.py benchmark_pdq_lookup` times it)."""
    candidates = Submission.objects.filter(pdq_quality__gte=settings.PDQ_MIN_QUALITY)
    if exclude_id is not None:
        candidates = candidates.exclude(pk=exclude_id)
    return pdq_distances(candidates, field="pdq", pdq=pdq, max_distance=settings.PDQ_MATCH_DISTANCE)
