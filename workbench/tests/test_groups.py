"""The photo check broken down by whom the photos show: groups, their verdicts, and the
summary's sentence on whose photos are flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detection.ml.card import GroupVerdicts, Thresholds
from workbench.training.groups import (
    group_notice,
    hypergeometric_tail,
    people,
    photo_groups,
    verdicts_by_group,
)

THRESHOLDS = Thresholds(flag=0.8, uncertain=0.6)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        ("0", "under 18"),
        ("17", "under 18"),
        ("18", "18-39"),
        ("64", "40-64"),
        ("65", "65 and over"),
    ],
)
def test_ages_fall_into_bands(age: str, band: str) -> None:
    assert photo_groups({"age": age, "gender": "female", "race": "black"}) == {
        "age": band,
        "gender": "female",
        "ethnicity": "black",
    }


def test_a_photo_without_annotations_is_in_no_group() -> None:
    assert photo_groups({"age": "", "original_width": "224"}) == {}


def test_each_group_counts_its_photos_verdicts() -> None:
    probabilities = np.array([0.9, 0.7, 0.1, 0.85, 0.2])
    attributes = [
        {"age": "70", "race": "white"},
        {"age": "70", "race": "asian"},
        {"age": "10", "race": "asian"},
        {"age": "30", "race": "white"},
        {},
    ]

    groups = verdicts_by_group(probabilities, attributes, THRESHOLDS)

    assert [(g.attribute, g.group, g.count, g.judged_fake, g.judged_uncertain) for g in groups] == [
        ("age", "under 18", 1, 0, 0),
        ("age", "18-39", 1, 1, 1),
        ("age", "65 and over", 2, 1, 2),
        ("ethnicity", "asian", 2, 0, 1),
        ("ethnicity", "white", 2, 2, 2),
    ]
    assert groups[2].mean_probability == pytest.approx(0.8)
    with pytest.raises(ValueError, match="5 scores against 4 photos"):
        verdicts_by_group(probabilities, attributes[:4], THRESHOLDS)


def group(
    name: str, count: int, fake: int, uncertain: int, attribute: str = "age"
) -> GroupVerdicts:
    return GroupVerdicts(attribute, name, count, fake, uncertain, mean_probability=0.3)


def test_a_group_flagged_beyond_chance_and_budget_is_named() -> None:
    notice = group_notice(
        [
            group("18-39", 400, 2, 8),
            group("65 and over", 150, 10, 12),
            group("asian", 200, 0, 3, attribute="ethnicity"),
            group("black", 12, 3, 3, attribute="ethnicity"),  # too few to speak of
        ],
        photos=1000,
        judged_fake=12,
    )

    assert notice == (
        'By age, gender and ethnicity, the share of these photos it wrongly calls "Likely '
        'manipulated" ranges from 0.0 % (Asian people) to 6.7 % (people aged 65 and over, 10 of '
        "150): photos of people aged 65 and over are flagged more often than other people's "
        "(p < 0.001 by Fisher's exact test, corrected for 3 groups); for people aged 65 and over "
        'the share is above the 2 % the thresholds allow; "Uncertain" or worse for 8.0 % of '
        "photos of people aged 65 and over (12 of 150), above the 5 % allowed."
    )


def test_a_few_flagged_photos_in_a_small_group_do_not_stand_out() -> None:
    """The shipped model's case: 1 of 55 photos of Black people, 9 of 1,467 in all."""
    notice = group_notice(
        [group("black", 55, 1, 1, "ethnicity"), group("white", 805, 2, 8, "ethnicity")],
        photos=1467,
        judged_fake=9,
    )

    # The chance that 9 flagged photos drawn from 1,467 miss all 55, twice (two groups).
    chance = 2 * (1 - math.comb(1467 - 55, 9) / math.comb(1467, 9))
    assert notice == (
        'By age, gender and ethnicity, the share of these photos it wrongly calls "Likely '
        'manipulated" ranges from 0.2 % (White people) to 1.8 % (Black people, 1 of 55): with 9 '
        f"photos flagged in all, chance alone could spread them this unevenly (p = {chance:.3f}), "
        "so no group stands out."
    )


def test_one_flagged_photo_is_one_photo() -> None:
    notice = group_notice(
        [group("indian", 244, 1, 1, "ethnicity"), group("white", 805, 0, 2, "ethnicity")],
        photos=1467,
        judged_fake=1,
    )

    assert notice is not None and ": with 1 photo flagged in all, chance alone" in notice


def test_a_fisher_p_value_is_the_hypergeometric_tail() -> None:
    def exact(hits: int, draws: int, successes: int, population: int) -> float:
        return sum(
            math.comb(successes, k) * math.comb(population - successes, draws - k)
            for k in range(hits, min(draws, successes) + 1)
        ) / math.comb(population, draws)

    for case in [(3, 10, 5, 40), (1, 55, 9, 1467), (19, 586, 26, 1467), (5, 5, 5, 5)]:
        assert hypergeometric_tail(*case) == pytest.approx(exact(*case), rel=1e-9)
    assert hypergeometric_tail(0, 10, 5, 40) == 1.0
    assert hypergeometric_tail(6, 10, 5, 40) == 0.0  # more hits than flagged photos
    assert hypergeometric_tail(2, 39, 5, 40) == 1.0  # 39 of 40 photos hold at least 4 flagged
    with pytest.raises(ValueError, match="between 0 and the population"):
        hypergeometric_tail(1, 50, 5, 40)


def test_no_summary_without_a_group_large_enough_to_tell() -> None:
    assert group_notice([group("65 and over", 29, 5, 5)], photos=100, judged_fake=5) is None
    assert group_notice([], photos=100, judged_fake=0) is None


def test_groups_in_words() -> None:
    assert people(group("other", 50, 0, 0, "ethnicity")) == "people of other ethnicities"
    assert people(group("male", 50, 0, 0, "gender")) == "men and boys"
    assert people(group("40-64", 50, 0, 0)) == "people aged 40-64"
