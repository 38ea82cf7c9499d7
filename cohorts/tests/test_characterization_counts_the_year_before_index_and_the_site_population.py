"""A characterization computed at the site, on a CDM small enough to count by hand (DuckDB): the top concepts are
those recorded in the 365 days up to and including the index date (a day earlier is out, the day after is out),
procedures included; the site's population is every person with an observation period, described at the end of
their latest one, a concept counting those with a record of it in the 365 days up to that date; every count comes
with the sum of its persons' record keys modulo 256; and a worker keeps the population per site and CDM
fingerprint, so a new fingerprint is counted afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cohorts.runs.demographics import INDEX_LOOKBACK_DAYS, PopulationCache, cohort_demographics
from warehouse.engines import Engine, connect
from warehouse.omop_ddl import cdm_tables, create_table_sql

TABLES = ("person", "observation_period", "condition_occurrence", "drug_exposure", "procedure_occurrence",
          "measurement", "concept")  # fmt: skip
DEFAULTS = {"int": 0, "bigint": 0, "num": 0, "date": "1970-01-01", "ts": "1970-01-01 00:00:00", "text": ""}
MALE, FEMALE = 8507, 8532
DIABETES, HYPERTENSION, METFORMIN, COLONOSCOPY = 201826, 320128, 1503297, 4249893
#: Record keys of persons 1 to 6.
KEYS = {1: 10, 2: 20, 3: 30, 4: 40, 5: 250, 6: 7}
#: The cohort: person 1 enters twice (the first entry is the index), 2 and 3 once; 4 and 5 are not in it.
COHORT = [(1, "2020-06-01"), (1, "2020-09-01"), (2, "2019-01-01"), (3, "2021-03-01")]


def insert(engine: Engine, table: str, **values: Any) -> None:
    """A row of a CDM table: the given columns, every other required one filled with a neutral value."""
    row = dict(values)
    for column in cdm_tables("5.4")[table]:
        if column.required and column.name not in row:
            row[column.name] = DEFAULTS["text" if column.is_text else column.type]
    names = ", ".join(row)
    placeholders = ", ".join(f"%({name})s" for name in row)
    engine.execute(f"INSERT INTO cdm.{table} ({names}) VALUES ({placeholders})", row)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect("duckdb", f"duckdb:///{tmp_path / 'small.duckdb'}")
    engine.execute("CREATE SCHEMA cdm")
    engine.execute("CREATE SCHEMA results")
    for table in TABLES:
        engine.execute(create_table_sql("duckdb", "cdm", table, "5.4"))
    engine.execute("CREATE TABLE results.keys (person_id BIGINT PRIMARY KEY, record_key SMALLINT NOT NULL)")
    for person_id, key in KEYS.items():
        engine.execute("INSERT INTO results.keys VALUES (%(p)s, %(k)s)", {"p": person_id, "k": key})
    for concept_id, name in ((MALE, "MALE"), (FEMALE, "FEMALE"), (DIABETES, "Type 2 diabetes mellitus"),
                             (HYPERTENSION, "Essential hypertension"), (METFORMIN, "metformin"),
                             (COLONOSCOPY, "Colonoscopy")):  # fmt: skip
        insert(engine, "concept", concept_id=concept_id, concept_name=name)
    for person_id, born, gender in ((1, 1970, MALE), (2, 1980, FEMALE), (3, 1950, FEMALE), (4, 2000, MALE),
                                    (5, 1960, MALE)):  # fmt: skip
        insert(engine, "person", person_id=person_id, year_of_birth=born, gender_concept_id=gender)
    # Person 4 has no observation period: not in the population. Person 2's latest period ends 2019-06-30.
    for i, (person_id, start, end) in enumerate(
        (
            (1, "2010-01-01", "2020-12-31"),
            (2, "2005-01-01", "2008-12-31"),
            (2, "2012-01-01", "2019-06-30"),
            (3, "2015-01-01", "2021-12-31"),
            (5, "2000-01-01", "2018-12-31"),
        )  # fmt: skip
    ):
        insert(engine, "observation_period", observation_period_id=i, person_id=person_id,
               observation_period_start_date=start, observation_period_end_date=end)  # fmt: skip
    conditions = [
        (1, DIABETES, "2019-06-02"),  # 365 days before person 1's index (2020 is a leap year): in
        (1, HYPERTENSION, "2019-06-01"),  # 366 days before: out
        (1, DIABETES, "2020-03-01"),  # in person 1's last observed year too
        (2, DIABETES, "2019-01-01"),  # on the index date: in
        (3, DIABETES, "2021-03-02"),  # the day after the index: out (but in the population's year)
        (3, HYPERTENSION, "2020-05-01"),  # 304 days before the index: in (out of the population's year)
        (4, DIABETES, "2020-01-01"),  # no observation period: in no population count
        (5, HYPERTENSION, "2018-12-01"),  # not in the cohort; in the population's year
    ]
    for i, (person_id, concept_id, day) in enumerate(conditions):
        insert(engine, "condition_occurrence", condition_occurrence_id=i, person_id=person_id,
               condition_concept_id=concept_id, condition_start_date=day)  # fmt: skip
    insert(engine, "drug_exposure", drug_exposure_id=1, person_id=2, drug_concept_id=METFORMIN,
           drug_exposure_start_date="2018-12-01", drug_exposure_end_date="2018-12-31")  # fmt: skip
    insert(engine, "procedure_occurrence", procedure_occurrence_id=1, person_id=3, procedure_concept_id=COLONOSCOPY,
           procedure_date="2021-01-15")  # fmt: skip
    yield engine
    engine.close()


def characterize(engine: Engine, population: PopulationCache | None = None, site: str | None = None) -> dict:
    rows = " UNION ALL ".join(
        f"SELECT {person_id} AS subject_id, DATE '{day}' AS cohort_start_date" for person_id, day in COHORT
    )
    return cohort_demographics(
        engine,
        cdm_schema="cdm",
        vocabulary_schema="cdm",
        cohort=(rows, {}),
        record_keys='"results"."keys"',
        population=population,
        site=site,
    )


def by_concept(rows: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    return {row["concept_id"]: (row["persons"], row["key"]) for row in rows}


def test_top_concepts_are_those_of_the_365_days_up_to_the_index_date(engine):
    result = characterize(engine)
    assert INDEX_LOOKBACK_DAYS == 365 and result["index_lookback_days"] == 365
    top = result["top_at_index"]
    assert by_concept(top["conditions"]) == {DIABETES: (2, 30), HYPERTENSION: (1, 30)}
    assert by_concept(top["drugs"]) == {METFORMIN: (1, 20)}
    assert by_concept(top["procedures"]) == {COLONOSCOPY: (1, 30)}
    assert top["measurements"] == []
    assert [row["name"] for row in top["conditions"]] == ["Type 2 diabetes mellitus", "Essential hypertension"]
    assert (result["persons"], result["persons_key"], result["unkeyed"]) == (3, 60, 0)


def test_the_population_is_every_person_observed_in_the_year_up_to_their_last_observation(engine):
    population = characterize(engine)["population"]
    assert population["definition"] == "observation-period-last-year" and population["window_days"] == 365
    # Persons 1, 2, 3 and 5 (4 has no observation period); keys 10 + 20 + 30 + 250 = 310 = 54 modulo 256.
    assert (population["persons"], population["persons_key"]) == (4, 54)
    top = population["top"]
    # Diabetes in the last observed year of 1 (2020-03-01), 2 (2019-01-01) and 3 (2021-03-02); not 4.
    assert by_concept(top["conditions"]) == {DIABETES: (3, 60), HYPERTENSION: (1, 250)}
    assert by_concept(top["drugs"]) == {METFORMIN: (1, 20)}
    assert by_concept(top["procedures"]) == {COLONOSCOPY: (1, 30)}
    assert top["measurements"] == []
    # Ages at the end of the latest observation period: 1 is 50 (2020), 2 is 39 (2019), 3 is 71, 5 is 58.
    pyramid = {(c["age_group"], c["gender_concept_id"]): (c["persons"], c["key"]) for c in population["age_pyramid"]}
    assert pyramid == {("30-39", FEMALE): (1, 20), ("50-59", MALE): (2, 4), ("70-79", FEMALE): (1, 30)}
    assert by_concept(population["gender"]) == {MALE: (2, 4), FEMALE: (2, 50)}


def test_a_worker_keeps_the_population_per_site_and_fingerprint(engine):
    cache = PopulationCache()
    first = characterize(engine, cache, "north:fingerprint-1")["population"]
    # The CDM changes: a new person with diabetes in their last observed year.
    insert(engine, "person", person_id=6, year_of_birth=1990, gender_concept_id=FEMALE)
    insert(engine, "observation_period", observation_period_id=9, person_id=6,
           observation_period_start_date="2015-01-01", observation_period_end_date="2020-12-31")  # fmt: skip
    insert(engine, "condition_occurrence", condition_occurrence_id=99, person_id=6, condition_concept_id=DIABETES,
           condition_start_date="2020-06-01")  # fmt: skip
    kept = characterize(engine, cache, "north:fingerprint-1")["population"]
    assert kept == first and kept["persons"] == 4
    # Its fingerprint changed with it: counted afresh.
    fresh = characterize(engine, cache, "north:fingerprint-2")["population"]
    assert fresh["persons"] == 5 and by_concept(fresh["top"]["conditions"])[DIABETES] == (4, 67)
    # Without a cache (or without a fingerprint) every run counts the population itself.
    assert characterize(engine)["population"] == fresh
