"""The photo check broken down by whom the photos show: groups, their verdicts, and the
summary's sentence on whose photos are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from detection.ml.card import GroupVerdicts, Thresholds
from workbench.training.groups import group_notice, people, photo_groups, verdicts_by_group

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


def test_the_summary_names_the_group_whose_photos_are_flagged_beyond_the_budget() -> None:
    notice = group_notice(
        [
            group("18-39", 400, 2, 8),
            group("65 and over", 150, 6, 9),
            group("asian", 200, 0, 3, attribute="ethnicity"),
            group("black", 12, 3, 3, attribute="ethnicity"),  # too few to speak of
        ]
    )

    assert notice == (
        'By age, gender and ethnicity, the share of these photos it wrongly calls "Likely '
        'manipulated" ranges from 0.0 % (Asian people) to 4.0 % (people aged 65 and over, 6 of '
        "150): above the 2 % its thresholds allow, so photos of people aged 65 and over are "
        'flagged more often than others; "Uncertain" or worse for 6.0 % of photos of people '
        "aged 65 and over (9 of 150), above the 5 % allowed."
    )


def test_within_budget_the_summary_gives_the_range_only() -> None:
    notice = group_notice([group("under 18", 500, 5, 10), group("female", 600, 3, 9, "gender")])

    assert notice is not None and "above" not in notice
    assert "from 0.5 % (women and girls) to 1.0 % (children under 18, 5 of 500)." in notice


def test_no_summary_without_a_group_large_enough_to_tell() -> None:
    assert group_notice([group("65 and over", 29, 5, 5)]) is None
    assert group_notice([]) is None


def test_groups_in_words() -> None:
    assert people(group("other", 50, 0, 0, "ethnicity")) == "people of other ethnicities"
    assert people(group("male", 50, 0, 0, "gender")) == "men and boys"
    assert people(group("40-64", 50, 0, 0)) == "people aged 40-64"
