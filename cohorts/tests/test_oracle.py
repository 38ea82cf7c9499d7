"""Soyang reproduces OHDSI Circe on every oracle definition, on PostgreSQL and on DuckDB.

For each definition of the oracle manifest, on its data set: the cohort rows are exactly Circe's
(``expected/NAME.csv``), and so are the person and row counts and Circe's by-person inclusion statistics
(each rule on its own, and the attrition of rules 1..k together).
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cohorts.expression import parse_expression
from cohorts.runs.generation import cohort_rows, generate_cohort
from cohorts.tests.conftest import CDM_FIXTURES, oracle_manifest

#: Cohort ids of this module (other modules generate into the same results schemas).
COHORT_ID_BASE = 910_000

CASES = [
    pytest.param(index, entry["name"], entry["dataset"], kind, id=f"{entry['name']}-{kind}")
    for index, entry in enumerate(oracle_manifest())
    for kind in ("postgresql", "duckdb")
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
