"""A hospital's existing CDM, attached rather than loaded, counts exactly as Circe; and the check made at attach
covers every table and column counting reads, so the two can never drift apart.

The attached CDMs are made by plain SQL from the GiBleed CSVs (``warehouse.tests.plain_cdm``): no Soyang loader,
no index, no statistics; on PostgreSQL the cohorts are generated under the role the site gives Soyang (read the
CDM, write the results schema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cohorts.expression import parse_expression
from cohorts.expression.domains import DOMAINS
from cohorts.runs.demographics import TOP_DOMAINS
from cohorts.runs.generation import cohort_rows, generate_cohort
from cohorts.tests.conftest import REPO_ROOT, oracle_manifest
from cohorts.tests.test_oracle import expected_rows
from warehouse.engines import connect
from warehouse.omop_ddl import CDM_EXTENSION_COLUMNS, COUNTED_CDM_TABLES, COUNTED_VOCABULARY_TABLES, counted_columns
from warehouse.services import source_attach, source_create
from warehouse.tests.plain_cdm import PlainCdm, plain_duckdb_cdm, plain_postgres_cdm

GIBLEED_DEFINITIONS = [entry["name"] for entry in oracle_manifest() if entry["dataset"] == "gibleed"]


def _checked(table: str, column: str) -> bool:
    """Whether attaching checks (or, for the CDM v6 location constructs, reports) this column."""
    in_cdm = any(column in counted_columns(version).get(table, ()) for version in ("5.3", "5.4"))
    return in_cdm or column in CDM_EXTENSION_COLUMNS.get(table, ())


def test_every_table_and_column_of_the_domains_is_checked_at_attach() -> None:
    unchecked = []
    for domain in DOMAINS.values():
        named = [domain.id_column, domain.start_column, domain.end_column, domain.source_concept_column]
        for column in filter(None, named):
            if not _checked(domain.table, column):
                unchecked.append(f"{domain.name}: {domain.table}.{column}")
        if domain.concept_column:
            # A location region is a column of the location a history row points to (the domains table says so).
            table = "location" if domain.name == "LocationRegion" else domain.table
            if not _checked(table, domain.concept_column):
                unchecked.append(f"{domain.name}: {table}.{domain.concept_column}")
    assert unchecked == []


def test_what_demographics_and_record_keys_read_is_checked_at_attach() -> None:
    read = [(table, column) for table, concept, start in TOP_DOMAINS.values() for column in (concept, start)]
    read += [("person", c) for c in ("person_id", "gender_concept_id", "race_concept_id", "ethnicity_concept_id")]
    read += [("person", "year_of_birth"), ("concept", "concept_id"), ("concept", "concept_name")]
    assert [f"{t}.{c}" for t, c in read if not _checked(t, c)] == []


def test_every_table_the_compiler_names_is_checked_at_attach() -> None:
    """The compiler reaches CDM tables through ``ctx.table(...)`` and ``ctx.vocab(...)``: each name it gives is
    one that attaching checks (or reports, for the location history outside CDM 5.3/5.4)."""
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "cohorts" / "compiler").glob("*.py"))
    named = set(re.findall(r"ctx\.(?:table|vocab)\('([a-z_]+)'\)", source))
    assert named  # the pattern still finds the compiler's table names
    known = {*COUNTED_CDM_TABLES, *COUNTED_VOCABULARY_TABLES, *CDM_EXTENSION_COLUMNS}
    assert sorted(named - known) == []


@pytest.fixture(params=["postgresql", "duckdb"])
def attached(request: pytest.FixtureRequest, shared_data_dir: Path, tmp_path: Path, db: None) -> Iterator[PlainCdm]:
    """A plain GiBleed CDM, registered and attached as a source ``hospital``."""
    data = shared_data_dir / "omop" / "gibleed"
    if request.param == "duckdb":
        cdm = plain_duckdb_cdm(tmp_path / "hospital.duckdb", data)
        _attach(cdm)
        yield cdm
        return
    with plain_postgres_cdm(request.getfixturevalue("test_cdm_pg_url"), data) as cdm:
        _attach(cdm)
        yield cdm


def _attach(cdm: PlainCdm) -> None:
    source = source_create(
        key="hospital", engine=cdm.kind, url=cdm.url, cdm_schema=cdm.cdm_schema, results_schema=cdm.results_schema
    )
    source_attach(source=source)


def test_the_oracle_counts_as_circe_on_an_attached_plain_cdm(attached: PlainCdm, oracle_dir: Path) -> None:
    assert len(GIBLEED_DEFINITIONS) >= 10
    with connect(attached.kind, attached.url) as engine:
        for cohort_id, name in enumerate(GIBLEED_DEFINITIONS, start=1):
            expression = parse_expression(json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text()))
            expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())

            result = generate_cohort(
                engine,
                expression,
                cdm_schema=attached.cdm_schema,
                vocabulary_schema=attached.vocabulary_schema,
                results_schema=attached.results_schema,
                cohort_id=cohort_id,
            )

            rows = cohort_rows(engine, results_schema=attached.results_schema, cohort_id=cohort_id)
            assert rows == expected_rows(oracle_dir / "expected" / f"{name}.csv"), name
            assert (result.persons, result.rows) == (expected["persons"], expected["rows"]), name
            by_person = expected["by_person"]
            assert result.inclusion_rules == [(r["name"], r["count"]) for r in by_person["inclusion_rules"]], name
            assert result.attrition == [(r["name"], r["count"]) for r in by_person["attrition"]], name
