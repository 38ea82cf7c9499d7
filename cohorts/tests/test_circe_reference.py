"""The Circe reference harness reproduces the cohort oracle on both engines.

Before Soyang is compared with Circe (test_differential.py, scripts/bench_cohorts.py), the harness that runs
Circe has to be right: on the loaded CDMs, for every oracle definition, Circe's SQL run through it must give the
oracle's rows and by-person inclusion statistics, on PostgreSQL and on DuckDB, with both independent ports of
circe-be, and with or without the same-day tie-break.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cohorts.tests.circe_reference import break_ties, circe_reference, circe_sql, load_expected_rows

REPO_ROOT = Path(__file__).resolve().parents[2]


def oracle_path() -> Path:
    """The oracle folder beside the shared data (same rule as the root conftest's ``oracle_dir``)."""
    raw = os.environ.get("SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    data = Path(raw) if Path(raw).is_absolute() else (REPO_ROOT / raw).resolve()
    return data.parent / "oracle"


def oracle_manifest() -> list[dict[str, Any]]:
    """The oracle's manifest, or nothing when it is missing (the ``oracle_dir`` fixture then fails the run)."""
    path = oracle_path() / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else []


#: Fixture name of the loaded CDM per oracle data set and engine (root conftest).
CDM_FIXTURES = {
    ("gibleed", "postgresql"): "cdm_gibleed_pg",
    ("gibleed", "duckdb"): "cdm_gibleed_duckdb",
    ("synthea27nj", "postgresql"): "cdm_synthea_pg",
    ("synthea27nj", "duckdb"): "cdm_synthea_duckdb",
}

ORACLE_CASES = [
    pytest.param(entry["name"], entry["dataset"], kind, id=f"{entry['name']}-{kind}")
    for entry in oracle_manifest()
    for kind in ("postgresql", "duckdb")
]


def run_reference(request: pytest.FixtureRequest, name: str, dataset: str, kind: str, **options: Any) -> Any:
    """Circe's result for oracle definition ``name`` on the loaded ``dataset`` CDM of engine ``kind``."""
    cdm = request.getfixturevalue(CDM_FIXTURES[(dataset, kind)])
    expression = json.loads((oracle_path() / "cohorts" / f"{name}.json").read_text())
    return circe_reference(
        cdm.engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=1,
        **options,
    )


@pytest.mark.parametrize(("name", "dataset", "kind"), ORACLE_CASES)
def test_circe_reference_reproduces_the_oracle_rows_and_stats(
    request: pytest.FixtureRequest, oracle_dir: Path, name: str, dataset: str, kind: str
) -> None:
    expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
    result = run_reference(request, name, dataset, kind)
    assert result.rows == load_expected_rows(oracle_dir / "expected" / f"{name}.csv")
    assert result.persons == expected["persons"]
    assert result.by_person == expected["by_person"]
    assert result.by_event == expected["by_event"]


@pytest.mark.parametrize(("name", "dataset", "kind"), ORACLE_CASES)
def test_second_port_and_tie_break_give_the_same_oracle_rows(
    request: pytest.FixtureRequest, oracle_dir: Path, name: str, dataset: str, kind: str
) -> None:
    # ohdsi-circepy is an independent port of circe-be and SqlRender; with the same-day tie-break added the
    # oracle definitions must not move either (none of them depends on an arbitrary pick).
    expected_rows = load_expected_rows(oracle_dir / "expected" / f"{name}.csv")
    expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
    second = run_reference(request, name, dataset, kind, sql_builder="circepy")
    assert second.rows == expected_rows
    assert second.by_person == expected["by_person"]
    tied = run_reference(request, name, dataset, kind, deterministic=True)
    assert tied.rows == expected_rows
    assert tied.by_person == expected["by_person"]


def test_tie_break_touches_only_the_orderings_it_names() -> None:
    expression = {
        "ConceptSets": [],
        "PrimaryCriteria": {
            "CriteriaList": [{"ObservationPeriod": {}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "All"},
        },
        "QualifiedLimit": {"Type": "Last"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": [{"name": "any", "expression": {"Type": "ALL", "CriteriaList": [], "Groups": []}}],
    }
    for dialect in ("postgresql", "duckdb"):
        sql = circe_sql(expression, dialect=dialect, cdm_schema="cdm", vocabulary_schema="cdm", results_schema="res")
        tied = break_ties(sql)
        assert "order by pe.start_date DESC, pe.event_id)" in tied
        assert "order by start_date ASC, event_id) as ordinal" in tied
        assert "R.start_date ASC, R.event_id)" in tied
        assert len(tied) - len(sql) == len(", pe.event_id") + len(", event_id") + len(", R.event_id")
