"""The de-identification rules on their own: pseudonyms, date offsets, age groups, k-anonymity, surrogates,
and the allow-list of columns."""

from __future__ import annotations

from datetime import date

import pytest

from datasets import catalogue
from datasets.deidentify import Surrogates, age_group, date_offsets, deidentify_date, k_anonymous, pseudonyms


def test_pseudonyms_are_unique_random_and_unrelated_to_the_ids() -> None:
    first = pseudonyms(range(1, 5001))
    second = pseudonyms(range(1, 5001))
    assert len(set(first.values())) == 5000
    assert all(p.startswith("P") and len(p) == 13 for p in first.values())
    assert not any(str(pid) == name for pid, name in first.items())
    # Per request: two extractions of the same persons share no pseudonym.
    assert not set(first.values()) & set(second.values())


def test_date_offsets_are_never_zero_and_within_the_bound() -> None:
    offsets = date_offsets(range(20_000), max_days=30)
    assert 0 not in offsets.values()
    assert min(offsets.values()) == -30 and max(offsets.values()) == 30
    with pytest.raises(ValueError):
        date_offsets([1], max_days=0)


def test_dates_are_shifted_by_the_persons_offset_or_reduced_to_year_month() -> None:
    assert deidentify_date(date(2020, 1, 10), offset=-15, mode="shift") == "2019-12-26"
    assert deidentify_date("2020-01-10", offset=-15, mode="year_month") == "2020-01"
    assert deidentify_date(None, offset=3, mode="shift") == ""


def test_ages_above_the_maximum_fall_in_one_group() -> None:
    assert age_group(0, max_age=89) == "0-4"
    assert age_group(87, max_age=89) == "85-89"
    assert age_group(89, max_age=89) == "85-89"
    assert age_group(90, max_age=89) == "90+"
    assert age_group(104, max_age=89) == "90+"
    assert age_group(None, max_age=89) == "unknown"


def test_k_anonymity_drops_every_person_of_a_group_smaller_than_k() -> None:
    quasi = {i: ("40-44", 8507, "") for i in range(5)} | {10: ("90+", 8532, ""), 11: ("90+", 8532, "")}
    kept, suppressed = k_anonymous(quasi, k=5)
    assert kept == set(range(5)) and suppressed == 2


def test_surrogates_are_sequential_and_stable_inside_one_extract() -> None:
    visits = Surrogates("V")
    assert [visits(9001), visits(17), visits(9001), visits(None)] == ["V000001", "V000002", "V000001", ""]


def test_source_values_free_text_and_datetimes_are_never_requestable() -> None:
    for table in catalogue.TABLES.values():
        for column in table.selectable:
            assert not column.endswith(("_source_value", "_datetime"))
            assert column not in ("value_as_string", "sig", "stop_reason", "provider_id", "care_site_id")
    with pytest.raises(ValueError, match="cannot be requested"):
        catalogue.validate_selection({"observation": ["value_as_string"]})
    with pytest.raises(ValueError, match="cannot be requested"):
        catalogue.validate_selection({"note": ["note_text"]})
    assert catalogue.validate_selection({"death": ["death_date"]}) == {"person": [], "death": ["death_date"]}
