"""On Spark, the fingerprint of a CDM changes with every write an ETL makes to a counted table (an append, an
INSERT OVERWRITE of the same rows, a table rebuilt and renamed into place, a new ``cdm_source`` release) and with
nothing that only reads: counting, caching, describing, Soyang's results and record-key tables.

A small CDM of its own in the session's Spark (a few GiBleed tables copied into a fresh schema), so that the
shared GiBleed stays as it is for the other tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from warehouse.fingerprint import cdm_fingerprint, fingerprint_parts


@pytest.fixture
def hospital(cdm_gibleed_spark: Any) -> Iterator[tuple[Any, SimpleNamespace]]:
    schema = f"hospital_{uuid.uuid4().hex[:8]}"
    engine = cdm_gibleed_spark.connect()
    engine.execute(f'CREATE SCHEMA "{schema}"')
    for table in ("person", "drug_exposure", "cdm_source"):
        engine.execute(f'CREATE TABLE "{schema}"."{table}" USING parquet AS SELECT * FROM "gibleed"."{table}"')
    try:
        yield engine, SimpleNamespace(cdm_schema=schema, vocabulary_schema=schema, results_schema=f"{schema}_results")
    finally:
        engine.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.execute(f'DROP SCHEMA IF EXISTS "{schema}_results" CASCADE')
        engine.close()


def test_every_etl_write_changes_the_spark_fingerprint_and_reading_changes_nothing(
    hospital: tuple[Any, SimpleNamespace],
) -> None:
    engine, source = hospital
    schema = f'"{source.cdm_schema}"'
    drugs = f'{schema}."drug_exposure"'
    first = cdm_fingerprint(engine, source)
    parts = fingerprint_parts(engine, source)
    assert parts["tables"][f"{source.cdm_schema}.drug_exposure"][0] >= 1  # its data files, counted
    assert parts["tables"][f"{source.cdm_schema}.concept"] == "absent"
    assert parts["cdm_source"] and parts["soyang_load"] is None

    # Reading, caching and Soyang's own tables beside the CDM change nothing.
    engine.fetchall(f"SELECT COUNT(*), MAX(drug_concept_id) FROM {drugs}")  # noqa: S608
    engine.execute(f"CACHE TABLE soyang_probe AS SELECT * FROM {drugs}")  # noqa: S608
    engine.execute("DROP VIEW IF EXISTS soyang_probe")
    engine.execute(f'CREATE SCHEMA "{source.results_schema}"')
    engine.execute(f'CREATE TABLE "{source.results_schema}"."cohort" USING parquet AS SELECT 1 AS subject_id')
    assert cdm_fingerprint(engine, source) == first

    # An ETL appends one exposure.
    engine.execute(f"INSERT INTO {drugs} SELECT * FROM {drugs} LIMIT 1")  # noqa: S608
    appended = cdm_fingerprint(engine, source)
    assert appended != first

    # The same rows written again (INSERT OVERWRITE): new files, a new fingerprint.
    engine.execute(f'CREATE TABLE {schema}."drug_copy" USING parquet AS SELECT * FROM {drugs}')  # noqa: S608
    engine.execute(f'INSERT OVERWRITE TABLE {drugs} SELECT * FROM {schema}."drug_copy"')  # noqa: S608
    overwritten = cdm_fingerprint(engine, source)
    assert overwritten not in (first, appended)

    # Rebuilt beside and renamed into place.
    engine.execute(f"DROP TABLE {drugs}")
    engine.execute(f'ALTER TABLE {schema}."drug_copy" RENAME TO {schema}."drug_exposure"')
    renamed = cdm_fingerprint(engine, source)
    assert renamed not in (first, appended, overwritten)

    # A new release recorded in cdm_source (as an ETL appends its row).
    engine.execute(f'INSERT INTO {schema}."cdm_source" SELECT * FROM "gibleed"."cdm_source"')  # noqa: S608
    released = cdm_fingerprint(engine, source)
    assert released not in (first, appended, overwritten, renamed)
    assert cdm_fingerprint(engine, source) == released
