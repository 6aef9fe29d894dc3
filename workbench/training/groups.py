"""Whom the held-out photos show, and how the model judged each group of them.

Thresholds fitted to flag at most 2 % of real photos can keep that promise on average and
break it for some people: children, older people, one ethnicity. UTKFace annotates each photo
with an age, a gender and an ethnicity (as its authors judged them), so the card breaks its
photo check down by them: the disaggregated evaluation that Mitchell et al., "Model Cards for
Model Reporting" (2019), ask of every model card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import hypergeom

from detection.ml.card import GroupVerdicts, Thresholds
from workbench.training.calibration import FAKE_BUDGET, UNCERTAIN_BUDGET

# (first age, name), youngest first.
AGE_BANDS = ((0, "under 18"), (18, "18-39"), (40, "40-64"), (65, "65 and over"))
ATTRIBUTES = ("age", "gender", "ethnicity")
# The smallest group the summary speaks of: in a smaller one a single photo moves its share
# by more than 3 points. The card's table still lists every group.
SUMMARY_MIN_COUNT = 30
# Below this p-value (corrected for the number of groups), a group's flagged photos are more
# than chance would put there.
STANDS_OUT = 0.05
_PEOPLE = {
    ("age", "under 18"): "children under 18",
    ("gender", "female"): "women and girls",
    ("gender", "male"): "men and boys",
    ("ethnicity", "other"): "people of other ethnicities",
}


def photo_groups(attributes: Mapping[str, str]) -> dict[str, str]:
    """A photo's group by each attribute it is annotated with, e.g. {"age": "18-39"}."""
    groups = {}
    age = attributes.get("age", "")
    if age.isdigit():
        groups["age"] = next(name for start, name in reversed(AGE_BANDS) if int(age) >= start)
    if attributes.get("gender"):
        groups["gender"] = attributes["gender"]
    if attributes.get("race"):
        groups["ethnicity"] = attributes["race"]
    return groups


def verdicts_by_group(
    probabilities: np.ndarray,
    attributes: Sequence[Mapping[str, str]],
    thresholds: Thresholds,
) -> list[GroupVerdicts]:
    """Each group's share of photos judged `fake` and `uncertain` or worse; groups by age in
    age order, the others by name. Photos without annotations count in no group."""
    if len(probabilities) != len(attributes):
        raise ValueError(f"{len(probabilities)} scores against {len(attributes)} photos")
    members: dict[tuple[str, str], list[int]] = {}
    for index, annotated in enumerate(attributes):
        for attribute, group in photo_groups(annotated).items():
            members.setdefault((attribute, group), []).append(index)
    age_order = [name for _, name in AGE_BANDS]

    def order(key: tuple[str, str]) -> tuple[int, int, str]:
        attribute, group = key
        rank = age_order.index(group) if attribute == "age" else 0
        return ATTRIBUTES.index(attribute), rank, group

    probabilities = np.asarray(probabilities)
    verdicts = []
    for attribute, group in sorted(members, key=order):
        scores = probabilities[members[attribute, group]]
        verdicts.append(
            GroupVerdicts(
                attribute=attribute,
                group=group,
                count=len(scores),
                judged_fake=int(np.sum(scores >= thresholds.flag)),
                judged_uncertain=int(np.sum(scores >= thresholds.uncertain)),
                mean_probability=round(float(scores.mean()), 6),
            )
        )
    return verdicts


def group_notice(groups: Sequence[GroupVerdicts], *, photos: int, judged_fake: int) -> str | None:
    """The summary's sentence on whose photos the model wrongly flags: the range over the
    groups, whether the most flagged group stands out from chance, and any group for which the
    thresholds break their budget. None when no group is large enough to tell.

    `photos` and `judged_fake` are the whole set's, which the groups are compared against.
    """
    sized = [group for group in groups if group.count >= SUMMARY_MIN_COUNT]
    if not sized:
        return None
    lowest = min(sized, key=lambda group: (group.fake_share, group.uncertain_share))
    highest = max(sized, key=lambda group: (group.fake_share, group.uncertain_share))
    sentence = (
        "By age, gender and ethnicity, the share of these photos it wrongly calls "
        f'"Likely manipulated" ranges from {_percent(lowest.fake_share)} ({people(lowest)}) to '
        f"{_percent(highest.fake_share)} ({people(highest)}, {highest.judged_fake} of "
        f"{highest.count})"
    )
    # Could chance alone have put so many of the flagged photos into this group? One-sided
    # Fisher exact test (the group against everyone else), Bonferroni-corrected for having
    # picked the highest of `sized` groups.
    chance = min(
        1.0,
        len(sized) * hypergeometric_tail(highest.judged_fake, highest.count, judged_fake, photos),
    )
    shown = "p < 0.001" if chance < 0.001 else f"p = {chance:.3f}"
    if chance < STANDS_OUT:
        sentence += (
            f": photos of {people(highest)} are flagged more often than other people's ({shown} "
            f"by Fisher's exact test, corrected for {len(sized)} groups)"
        )
    else:
        sentence += (
            f": with {judged_fake} {'photo' if judged_fake == 1 else 'photos'} flagged in all, "
            f"chance alone could spread them this unevenly ({shown}), so no group stands out"
        )
    if highest.fake_share > FAKE_BUDGET:
        sentence += (
            f"; for {people(highest)} the share is above the {_percent(FAKE_BUDGET, 0)} the "
            "thresholds allow"
        )
    most_uncertain = max(sized, key=lambda group: group.uncertain_share)
    if most_uncertain.uncertain_share > UNCERTAIN_BUDGET:
        sentence += (
            f'; "Uncertain" or worse for {_percent(most_uncertain.uncertain_share)} of photos '
            f"of {people(most_uncertain)} ({most_uncertain.judged_uncertain} of "
            f"{most_uncertain.count}), above the {_percent(UNCERTAIN_BUDGET, 0)} allowed"
        )
    return sentence + "."


def hypergeometric_tail(hits: int, draws: int, successes: int, population: int) -> float:
    """P(at least `hits` flagged among `draws` photos picked at random from `population`
    photos of which `successes` are flagged): the one-sided Fisher exact test's p-value."""
    if not (0 <= draws <= population and 0 <= successes <= population):
        raise ValueError("draws and successes must lie between 0 and the population")
    return float(hypergeom.sf(hits - 1, population, successes, draws))


def people(group: GroupVerdicts) -> str:
    """The group in words: "people aged 65 and over", "Asian people"."""
    known = _PEOPLE.get((group.attribute, group.group))
    if known:
        return known
    if group.attribute == "age":
        return f"people aged {group.group}"
    if group.attribute == "ethnicity":
        return f"{group.group.capitalize()} people"
    return f"{group.attribute} {group.group}"


def _percent(share: float, decimals: int = 1) -> str:
    return f"{100 * share:.{decimals}f} %"
