"""Soyang reproduces OHDSI Circe on every oracle definition, on PostgreSQL, DuckDB and Spark.

For each definition of the oracle manifest, on its data set: the cohort rows are exactly Circe's
(``expected/NAME.csv``), and so are the person and row counts and Circe's by-person inclusion statistics
(each rule on its own, and the attrition of rules 1..k together), and by event too, with the initial persons and
events before any rule (Circe's ``summary`` base).
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cohorts.expression import parse_expression
from cohorts.runs.generation import cohort_rows, count_cohort, generate_cohort
from cohorts.tests.conftest import CDM_FIXTURES, oracle_manifest

#: Cohort ids of this module (other modules generate into the same results schemas).
COHORT_ID_BASE = 910_000

CASES = [
    pytest.param(index, entry["name"], entry["dataset"], kind, id=f"{entry['name']}-{kind}")
    for index, entry in enumerate(oracle_manifest())
    for kind in ("postgresql", "duckdb", "spark")
]
#: The count path runs the generation's statements without the writes; on Spark (seconds per statement on test
#: data) it is proven on random definitions by the differential suite, and here on two oracle definitions.
COUNT_CASES = [
    case
    for case in CASES
    if case.values[3] != "spark"
    or case.values[1] in ("h04_gibleed_censored_by_acetaminophen", "h12_long_observation_children")
]


def expected_rows(path: Path) -> list[tuple[int, date, date]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return [
            (int(r["subject_id"]), date.fromisoformat(r["cohort_start_date"]), date.fromisoformat(r["cohort_end_date"]))
            for r in reader
        ]


@pytest.mark.parametrize(("index", "name", "dataset", "kind"), CASES)
def test_oracle_definition_gives_circes_cohort(
    request: pytest.FixtureRequest, oracle_dir: Path, index: int, name: str, dataset: str, kind: str
) -> None:
    cdm: Any = request.getfixturevalue(CDM_FIXTURES[(dataset, kind)])
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text()))
    expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
    cohort_id = COHORT_ID_BASE + index

    result = generate_cohort(
        cdm.engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=cohort_id,
    )
    rows = cohort_rows(cdm.engine, results_schema=cdm.results_schema, cohort_id=cohort_id)

    assert rows == expected_rows(oracle_dir / "expected" / f"{name}.csv")
    assert (result.persons, result.rows) == (expected["persons"], expected["rows"])
    by_person = expected["by_person"]
    assert result.inclusion_rules == [(r["name"], r["count"]) for r in by_person["inclusion_rules"]]
    assert result.attrition == [(r["name"], r["count"]) for r in by_person["attrition"]]
    assert_initial_and_by_event_like_circe(result, expected)


def test_generating_twice_replaces_the_rows_of_the_cohort(cdm_gibleed_duckdb: Any, oracle_dir: Path) -> None:
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / "pl_10606.json").read_text()))
    cdm = cdm_gibleed_duckdb
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    first = generate_cohort(cdm.engine, expression, cohort_id=COHORT_ID_BASE + 999, **schemas)
    second = generate_cohort(cdm.engine, expression, cohort_id=COHORT_ID_BASE + 999, **schemas)

    rows = cohort_rows(cdm.engine, results_schema=cdm.results_schema, cohort_id=COHORT_ID_BASE + 999)
    assert first.rows == second.rows == len(rows) == 413


#: A schema no test creates: the count path must never need the results schema.
NOWHERE = "soyang_count_path_writes_nowhere"


@pytest.mark.parametrize(("index", "name", "dataset", "kind"), COUNT_CASES)
def test_oracle_definition_counts_like_circe_on_the_count_path(
    request: pytest.FixtureRequest, oracle_dir: Path, index: int, name: str, dataset: str, kind: str
) -> None:
    cdm: Any = request.getfixturevalue(CDM_FIXTURES[(dataset, kind)])
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text()))
    expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
    index_dates = _index_dates(expected_rows(oracle_dir / "expected" / f"{name}.csv"))

    seen: list[tuple[str, dict[str, Any]]] = []

    def describe(engine: Any, cohort: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        seen.append(cohort)
        sql, params = cohort
        return {
            "index_dates": sorted(
                (int(subject), _as_day(start))
                for subject, start in engine.fetchall(
                    f"SELECT subject_id, MIN(cohort_start_date) FROM ({sql}) c GROUP BY subject_id", params
                )
            )
        }

    result = count_cohort(
        cdm.engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=NOWHERE,
        describe=describe,
    )

    assert (result.persons, result.rows) == (expected["persons"], None)
    by_person = expected["by_person"]
    assert result.inclusion_rules == [(r["name"], r["count"]) for r in by_person["inclusion_rules"]]
    assert result.attrition == [(r["name"], r["count"]) for r in by_person["attrition"]]
    assert_initial_and_by_event_like_circe(result, expected)
    # The rows the count's transaction described are Circe's rows (each person at their first entry).
    assert len(seen) == 1 and result.described == {"index_dates": index_dates}
    assert not schema_exists(cdm.engine, NOWHERE), "the count path created the results schema"


def schema_exists(engine: Any, schema: str) -> bool:
    if engine.kind == "spark":
        return any(row[0] == schema for row in engine.fetchall("SHOW SCHEMAS"))
    return bool(engine.fetchall("SELECT 1 FROM information_schema.schemata WHERE schema_name = %(s)s", {"s": schema}))


def assert_initial_and_by_event_like_circe(result: Any, expected: dict[str, Any]) -> None:
    """The attrition page's initial row and by-event mode are Circe's: the base of each mode (every qualified
    person, every qualified event), and each rule alone and rules 1..k by event."""
    by_person, by_event = expected["by_person"], expected["by_event"]
    # Circe writes no summary for a definition without inclusion rules (nothing to compare the base with there).
    if by_person["summary"] is not None:
        assert result.initial_persons == by_person["summary"]["base"]
    if by_event["summary"] is not None:
        assert result.by_event.initial == by_event["summary"]["base"]
    assert result.by_event.inclusion_rules == [(r["name"], r["count"]) for r in by_event["inclusion_rules"]]
    assert result.by_event.attrition == [(r["name"], r["count"]) for r in by_event["attrition"]]


def _index_dates(rows: list[tuple[int, date, date]]) -> list[tuple[int, date]]:
    first: dict[int, date] = {}
    for subject, start, _ in rows:
        first[subject] = min(start, first.get(subject, start))
    return sorted(first.items())


def _as_day(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else date.fromisoformat(str(value)[:10])
