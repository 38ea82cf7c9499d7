"""The generalization ladder on its own (plain Python): the least step under which every combination of the
released quasi-identifiers has at least k persons, suppressing no more than the cap; none when no step gets there."""

from __future__ import annotations

from collections import Counter
from typing import Any

from datasets import catalogue
from datasets.deidentify import generalize, ladder, released_quasi, suppression_cap

COLUMNS = [catalogue.AGE_GROUP, "gender_concept_id", "year_of_birth", "race_concept_id"]
DEMOGRAPHICS = ["gender_concept_id", "race_concept_id"]


def _person(age: int, gender: int, race: int, index_year: int = 2020) -> dict[str, Any]:
    return {"age": age, "year_of_birth": index_year - age, "gender_concept_id": gender, "race_concept_id": race}


def _groups(people: dict[int, dict[str, Any]], kept: set[int], step: Any) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(released_quasi(people[pid], step, columns=COLUMNS, max_age=89).values()) for pid in kept)


def test_the_quasi_identifiers_are_the_released_person_columns_and_the_age_group() -> None:
    assert catalogue.quasi_identifiers({"person": [], "death": ["death_date"]}) == [catalogue.AGE_GROUP]
    assert catalogue.quasi_identifiers({"person": ["race_concept_id", "year_of_birth"]}) == [
        catalogue.AGE_GROUP,
        "year_of_birth",
        "race_concept_id",
    ]


def test_exact_years_of_birth_in_small_groups_are_withheld_and_nobody_is_lost() -> None:
    # 30 years of birth x 2 sexes, 2 persons each: every (year, sex) group is under 5, but the 5-year age groups
    # by sex hold 10.
    people = {i: _person(age=40 + (i // 4), gender=8507 + (i % 2) * 25, race=8527) for i in range(30 * 4)}
    step, kept, suppressed = generalize(people, columns=COLUMNS, demographics=DEMOGRAPHICS, k=5, max_age=89) or (
        None,
        set(),
        -1,
    )
    assert step is not None and step.name == "age_5y" and not step.birth_year
    assert suppressed == 0 and kept == set(people)
    assert min(_groups(people, kept, step).values()) >= 5


def test_a_rare_race_is_withheld_when_the_cap_would_be_exceeded_otherwise() -> None:
    common = {i: _person(age=50, gender=8507, race=8527) for i in range(60)}
    rare = {100 + i: _person(age=50 + i, gender=8507, race=8516 + i) for i in range(6)}
    people = {**common, **rare}
    assert suppression_cap(len(people), k=5) == 4  # six rare persons would be too many to drop
    chosen = generalize(people, columns=COLUMNS, demographics=DEMOGRAPHICS, k=5, max_age=89)
    assert chosen is not None
    step, kept, suppressed = chosen
    assert step.withheld == ("race_concept_id",) and step.age_width == 10
    assert suppressed <= 4 and min(_groups(people, kept, step).values()) >= 5


def test_no_step_within_the_cap_refuses() -> None:
    # Ten persons spread over ten age decades and two sexes: no generalization short of dropping the age brings
    # groups of five.
    people = {i: _person(age=5 + 10 * (i % 9), gender=8507 + (i % 2) * 25, race=8527) for i in range(10)}
    assert generalize(people, columns=COLUMNS, demographics=DEMOGRAPHICS, k=5, max_age=89) is None


def test_the_ladder_widens_step_by_step_and_keeps_sex_to_the_end() -> None:
    steps = ladder(["gender_concept_id", "race_concept_id", "ethnicity_concept_id"])
    assert [s.name for s in steps][:3] == ["exact", "age_5y", "age_10y"]
    assert [s.withheld for s in steps[3:]] == [
        ("ethnicity_concept_id",),
        ("race_concept_id", "ethnicity_concept_id"),
    ]
