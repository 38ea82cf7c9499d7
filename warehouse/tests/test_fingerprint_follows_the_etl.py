"""The fingerprint of a CDM changes with what a hospital's ETL changes, and with nothing Soyang does.

On a CDM made by plain SQL (``plain_cdm``) on PostgreSQL and DuckDB: deleting some rows and inserting as many
others, reloading a table, or a new ``cdm_source`` release changes it; Soyang's results tables, record keys,
ANALYZE and VACUUM do not. Soyang's own loader gives every load a new one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cohorts.runs.generation import generate_cohort
from disclosure.record_keys import record_keys_ensure
from warehouse.engines import connect
from warehouse.fingerprint import cdm_fingerprint
from warehouse.loader import load_cdm_directory
from warehouse.tests.plain_cdm import PlainCdm, plain_duckdb_cdm, plain_postgres_cdm


@pytest.fixture(params=["postgresql", "duckdb"])
def plain_cdm(request: pytest.FixtureRequest, shared_data_dir: Path, tmp_path: Path) -> Iterator[PlainCdm]:
    data = shared_data_dir / "omop" / "gibleed"
    if request.param == "duckdb":
        yield plain_duckdb_cdm(tmp_path / "hospital.duckdb", data)
        return
    with plain_postgres_cdm(request.getfixturevalue("test_cdm_pg_url"), data) as cdm:
        yield cdm


def _fingerprint(cdm: PlainCdm) -> str:
    with connect(cdm.kind, cdm.url) as engine:
        return cdm_fingerprint(engine, cdm)


# One person's drug exposures go, and as many new exposures (of a new person) come: the same row count.
def _reload_statements(cdm: PlainCdm) -> list[str]:
    table = f"{cdm.cdm_schema}.drug_exposure"
    return [
        f"CREATE TEMPORARY TABLE gone AS SELECT * FROM {table} WHERE person_id = (SELECT MIN(person_id) FROM {table})",
        f"DELETE FROM {table} WHERE person_id = (SELECT MIN(person_id) FROM gone)",
        "UPDATE gone SET person_id = person_id + 100000000",
        f"INSERT INTO {table} SELECT * FROM gone",
        "DROP TABLE gone",
    ]


def test_deleting_some_rows_and_inserting_as_many_changes_the_fingerprint(plain_cdm: PlainCdm) -> None:
    with connect(plain_cdm.kind, plain_cdm.owner_url) as engine:
        rows = engine.fetchone(f"SELECT COUNT(*) FROM {plain_cdm.cdm_schema}.drug_exposure")
    before = _fingerprint(plain_cdm)

    plain_cdm.etl(*_reload_statements(plain_cdm))

    with connect(plain_cdm.kind, plain_cdm.owner_url) as engine:
        assert engine.fetchone(f"SELECT COUNT(*) FROM {plain_cdm.cdm_schema}.drug_exposure") == rows
    assert _fingerprint(plain_cdm) != before


def test_a_new_cdm_source_release_or_a_table_rebuilt_and_swapped_in_changes_the_fingerprint(
    plain_cdm: PlainCdm,
) -> None:
    first = _fingerprint(plain_cdm)
    plain_cdm.etl(f"UPDATE {plain_cdm.cdm_schema}.cdm_source SET source_release_date = DATE '2024-01-31'")
    second = _fingerprint(plain_cdm)
    # Rebuilt beside and swapped in, as many ETLs reload: same rows count, other concepts.
    schema, table = plain_cdm.cdm_schema, f"{plain_cdm.cdm_schema}.drug_exposure"
    plain_cdm.etl(
        f"CREATE TABLE {schema}.drug_exposure_new AS SELECT * FROM {table}",
        f"UPDATE {schema}.drug_exposure_new SET drug_concept_id = drug_concept_id + 1",
        f"DROP TABLE {table}",
        f"ALTER TABLE {schema}.drug_exposure_new RENAME TO drug_exposure",
        *([f"GRANT SELECT ON {table} TO {plain_cdm.role}"] if plain_cdm.role else []),
    )
    third = _fingerprint(plain_cdm)

    assert len({first, second, third}) == 3


def test_nothing_soyang_does_changes_the_fingerprint(plain_cdm: PlainCdm, oracle_dir: Path) -> None:
    before = _fingerprint(plain_cdm)
    expression = json.loads((oracle_dir / "cohorts" / "h04_gibleed_censored_by_acetaminophen.json").read_text())

    with connect(plain_cdm.kind, plain_cdm.url) as engine:
        keys = record_keys_ensure(engine, source=_Site(plain_cdm))
        generate_cohort(
            engine,
            expression,
            cdm_schema=plain_cdm.cdm_schema,
            vocabulary_schema=plain_cdm.vocabulary_schema,
            results_schema=plain_cdm.results_schema,
            cohort_id=1,
            record_keys=keys,
        )
    # What the site's DBA and autovacuum do to the CDM tables between reloads.
    if plain_cdm.kind == "postgresql":
        plain_cdm.etl(f"VACUUM ANALYZE {plain_cdm.cdm_schema}.drug_exposure", f"ANALYZE {plain_cdm.cdm_schema}.person")
    else:
        plain_cdm.etl("ANALYZE", "CHECKPOINT")
    time.sleep(1.1)  # past PostgreSQL's shortest statistics flush interval: every counter Soyang moved is visible

    assert _fingerprint(plain_cdm) == before


def test_every_load_by_soyang_gives_a_new_fingerprint(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url
    export = make_mini_export()
    site = _Schemas("w_fingerprint")
    with connect(kind, url) as engine:
        load_cdm_directory(engine, export, cdm_schema=site.cdm_schema)
    first = _fingerprint_of(kind, url, site)
    with connect(kind, url) as engine:
        load_cdm_directory(engine, export, cdm_schema=site.cdm_schema)

    assert _fingerprint_of(kind, url, site) != first
    assert _fingerprint_of(kind, url, site) == _fingerprint_of(kind, url, site)


class _Site:
    """The source fields record keys read."""

    def __init__(self, cdm: PlainCdm) -> None:
        self.key = "hospital"
        self.cdm_schema = cdm.cdm_schema
        self.results_schema = cdm.results_schema


class _Schemas:
    def __init__(self, schema: str) -> None:
        self.cdm_schema = self.vocabulary_schema = schema


def _fingerprint_of(kind: str, url: str, site: _Schemas) -> str:
    with connect(kind, url) as engine:
        return cdm_fingerprint(engine, site)
