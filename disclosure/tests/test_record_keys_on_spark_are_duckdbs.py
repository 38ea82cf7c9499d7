"""A Spark site keys its persons exactly as a DuckDB site does with the same secret (so both release the same
perturbed numbers for the same persons): on first use, when persons are missing (the anti-joined append), and
when the secret changes (the whole table overwritten). GiBleed on the session's Spark and in DuckDB."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from disclosure.cellkey import record_key
from disclosure.record_keys import (
    record_key_secret_variable,
    record_key_table,
    record_keys_ensure,
    record_keys_fill,
    record_keys_rebuild,
)


def _keys(engine: Any, table: str) -> list[tuple[int, int]]:
    return sorted((int(p), int(k)) for p, k in engine.fetchall(f"SELECT person_id, record_key FROM {table}"))  # noqa: S608


def test_spark_keys_every_person_as_duckdb_does_when_filling_and_rebuilding(
    cdm_gibleed_spark: Any, cdm_gibleed_duckdb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"k{uuid.uuid4().hex[:8]}"
    site = SimpleNamespace(key=key, cdm_schema="gibleed", vocabulary_schema="gibleed", results_schema="gibleed_results")
    secret = uuid.uuid4().hex
    monkeypatch.setenv(record_key_secret_variable(key), secret)
    spark, duck = cdm_gibleed_spark.connect(), cdm_gibleed_duckdb.connect()
    try:
        persons = sorted(int(row[0]) for row in duck.fetchall("SELECT person_id FROM gibleed.person"))
        table = record_key_table(site.results_schema, key)
        # The table exists already with three persons keyed (as before a reload of the CDM added the others).
        spark.execute(f"CREATE TABLE {table} (person_id BIGINT, record_key SMALLINT) USING parquet")
        spark.execute(
            f"INSERT INTO {table} VALUES "  # noqa: S608 - computed integers
            + ", ".join(f"({p}, {record_key(secret.encode(), p)})" for p in persons[:3])
        )

        assert record_keys_ensure(spark, source=site) == table  # found: not filled again
        assert record_keys_fill(spark, source=site) == len(persons) - 3
        assert record_keys_fill(spark, source=site) == 0
        record_keys_ensure(duck, source=site)
        keyed = _keys(spark, table)
        assert keyed == _keys(duck, table)
        assert [p for p, _ in keyed] == persons  # each person once
        assert keyed[0][1] == record_key(secret.encode(), persons[0])

        # A new secret: every key replaced, still one per person, still DuckDB's.
        monkeypatch.setenv(record_key_secret_variable(key), uuid.uuid4().hex)
        assert record_keys_rebuild(spark, source=site) == len(persons)
        record_keys_rebuild(duck, source=site)
        rebuilt = _keys(spark, table)
        assert rebuilt == _keys(duck, table) != keyed
        assert [p for p, _ in rebuilt] == persons
    finally:
        spark.close()
        duck.close()
