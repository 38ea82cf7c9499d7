"""Scale a loaded OMOP CDM by cloning its persons: GiBleed x10 for benchmarks, with real clinical patterns.

``scale_cdm`` copies every person-level table of a source CDM schema ``factor`` times into a target schema,
adding ``k * offset`` (k = 0 .. factor-1) to the person id and to every event id, so clone k is an exact copy of
the source population with disjoint ids and every cross-reference (visit of a condition, era of a person, ...)
kept inside its clone. Tables without persons (vocabulary, cdm_source, care sites, providers, locations) are
copied once. Everything runs as SQL on the engine (``INSERT ... SELECT ... CROSS JOIN`` a series of clone
numbers), so nothing goes through Python rows; the source schema's indexes are rebuilt on the target, then
statistics. On Spark the clones are Parquet tables written by the cluster (a 10M-person warehouse from a loaded 1M
one, where a CSV of 130 GB would not fit), with no transaction: an interrupted run leaves a half-scaled target,
which the next run drops.

A cohort on the scaled CDM is the source cohort repeated per clone, which is what makes scaled benchmarks
checkable: counts must be exactly ``factor`` times the source counts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from warehouse.engines import quote_ident
from warehouse.omop_ddl import cluster_sql

#: Columns that identify an event (or a person) and so must be shifted in each clone. A table's own id column
#: (``<table>_id``) is shifted too. Every such id is shifted by the same offset, so references between tables
#: (``visit_occurrence_id`` in ``condition_occurrence``, ``measurement_event_id``, ...) stay consistent.
EVENT_ID_COLUMNS = frozenset(
    {
        "person_id",
        "observation_period_id",
        "visit_occurrence_id",
        "visit_detail_id",
        "preceding_visit_occurrence_id",
        "preceding_visit_detail_id",
        "visit_detail_parent_id",
        "parent_visit_detail_id",
        "condition_occurrence_id",
        "drug_exposure_id",
        "procedure_occurrence_id",
        "device_exposure_id",
        "measurement_id",
        "observation_id",
        "note_id",
        "specimen_id",
        "episode_id",
        "episode_parent_id",
        "payer_plan_period_id",
        "condition_era_id",
        "drug_era_id",
        "dose_era_id",
        "measurement_event_id",
        "observation_event_id",
        "note_event_id",
        "device_exposure_event_id",
    }
)


@dataclass(frozen=True)
class ScaleReport:
    """What ``scale_cdm`` wrote: rows per target table, the id offset between clones, and the time taken."""

    factor: int
    offset: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def persons(self) -> int:
        """Persons in the scaled CDM."""
        return self.rows.get("person", 0)


def scale_cdm(engine: Any, *, source_schema: str, target_schema: str, factor: int) -> ScaleReport:
    """Clone the persons of ``source_schema`` ``factor`` times into ``target_schema`` (dropped and rebuilt).

    ``engine`` is a ``warehouse.engines.Engine`` (PostgreSQL, DuckDB or Spark). Factor 1 gives a plain copy.
    """
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if source_schema == target_schema:
        raise ValueError("the target schema must differ from the source schema")
    started = time.perf_counter()
    source, target = quote_ident(source_schema), quote_ident(target_schema)
    columns = _table_columns(engine, source_schema)
    if "person" not in columns:
        raise ValueError(f"schema {source_schema!r} holds no OMOP person table")
    person_tables = {t for t, cols in columns.items() if "person_id" in cols}
    shifted = {t: [c for c in columns[t] if c in EVENT_ID_COLUMNS or c == f"{t}_id"] for t in person_tables}
    offset = _id_offset(engine, source, shifted)
    indexes = _index_definitions(engine, source_schema)

    rows: dict[str, int] = {}
    with engine.transaction():
        # The target is ours to rebuild: a half-scaled schema from an interrupted run must not be reused.
        engine.execute_script(f"DROP SCHEMA IF EXISTS {target} CASCADE; CREATE SCHEMA {target};")
        for table, cols in sorted(columns.items()):
            name = quote_ident(table)
            # Same column names and types as the source; constraints and indexes come after the bulk insert.
            using = " USING parquet" if engine.kind == "spark" else ""
            engine.execute(f"CREATE TABLE {target}.{name}{using} AS SELECT * FROM {source}.{name} WHERE 1 = 0", None)
            column_list = ", ".join(quote_ident(c) for c in cols)
            if table in person_tables:
                select = ", ".join(
                    f"{quote_ident(c)} + k.k * CAST(%(offset)s AS BIGINT)" if c in shifted[table] else quote_ident(c)
                    for c in cols
                )
                engine.execute(
                    f"INSERT INTO {target}.{name} ({column_list}) SELECT {select} FROM {source}.{name} "
                    f"CROSS JOIN {_clone_numbers(engine.kind, factor)}",
                    {"offset": offset},
                )
            else:
                engine.execute(
                    f"INSERT INTO {target}.{name} ({column_list}) SELECT {column_list} FROM {source}.{name}", None
                )
        # DuckDB: each event table in concept order, as the loader stores it (zone maps then skip row groups).
        for statement in cluster_sql(engine.kind, target_schema, columns):
            engine.execute(statement, None)
        for table, index_sql in indexes:
            engine.execute(_retarget_index(index_sql, engine.kind, source_schema, target_schema, table), None)
    for table in sorted(columns):
        count = engine.fetchone(f"SELECT COUNT(*) FROM {target}.{quote_ident(table)}", None)
        rows[table] = int(count[0])
    _analyze(engine, target, rows)
    return ScaleReport(factor=factor, offset=offset, rows=rows, seconds=time.perf_counter() - started)


def _clone_numbers(kind: str, factor: int) -> str:
    """A relation ``k`` of one column ``k``: 0 .. factor - 1 (an int, never user text)."""
    if kind == "spark":
        return f"(SELECT id AS k FROM range(0, {int(factor)})) AS k"
    return f"(SELECT * FROM generate_series(0, {int(factor) - 1})) AS k(k)"


def _table_columns(engine: Any, schema: str) -> dict[str, list[str]]:
    """Base tables of ``schema`` and their columns in order (information_schema on PostgreSQL and DuckDB, the
    catalog's own listing on Spark)."""
    if engine.kind == "spark":
        from warehouse.spark_catalog import schema_tables

        tables = schema_tables(engine, schema) or {}
        return {name: list(table.columns) for name, table in sorted(tables.items()) if not table.is_view}
    result: dict[str, list[str]] = {}
    for table, column in engine.fetchall(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = %(schema)s AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position",
        {"schema": schema},
    ):
        result.setdefault(str(table).lower(), []).append(str(column).lower())
    return result


def _id_offset(engine: Any, source: str, shifted: dict[str, list[str]]) -> int:
    """A power of ten above every shifted id of the source, so clones' ids never collide (and read well)."""
    highest = 0
    for table, cols in shifted.items():
        if not cols:
            continue
        maxima = ", ".join(f"MAX({quote_ident(c)})" for c in cols)
        row = engine.fetchone(f"SELECT {maxima} FROM {source}.{quote_ident(table)}", None)
        highest = max([highest, *(int(v) for v in row if v is not None)])
    return 10 ** len(str(max(highest, 1)))


def _index_definitions(engine: Any, schema: str) -> list[tuple[str, str]]:
    """(table, CREATE INDEX statement) for every index of ``schema``, as the loader made them (Spark has none)."""
    if engine.kind == "spark":
        return []
    if engine.kind == "postgresql":
        return [
            (str(table), str(sql))
            for table, sql in engine.fetchall(
                "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = %(schema)s ORDER BY indexname",
                {"schema": schema},
            )
        ]
    found = []
    for table, name, unique, expressions in engine.fetchall(
        "SELECT table_name, index_name, is_unique, expressions FROM duckdb_indexes() "
        "WHERE schema_name = %(schema)s ORDER BY index_name",
        {"schema": schema},
    ):
        # DuckDB's own ``sql`` column leaves the schema out; rebuild the statement from its parts.
        columns = expressions if isinstance(expressions, list) else re.findall(r"[\w\"]+", str(expressions))
        kind = "UNIQUE INDEX" if unique else "INDEX"
        found.append(
            (str(table), f"CREATE {kind} {quote_ident(name)} ON @target.{quote_ident(table)} ({', '.join(columns)})")
        )
    return found


def _retarget_index(sql: str, kind: str, source_schema: str, target_schema: str, table: str) -> str:
    """The source's index statement pointed at the target schema's table."""
    target = f"{quote_ident(target_schema)}.{quote_ident(table)}"
    if kind != "postgresql":
        return sql.replace(f"@target.{quote_ident(table)}", target)
    # pg_indexes prints "ON [ONLY] schema.table USING ..."; schema and table are quoted only when they must be.
    retargeted, count = re.subn(r" ON (ONLY )?\S+ USING ", f" ON {target} USING ", sql, count=1)
    if count != 1:
        raise ValueError(f"cannot retarget index definition: {sql}")
    return retargeted


def _analyze(engine: Any, target: str, rows: dict[str, int]) -> None:
    """Statistics (and on PostgreSQL the visibility map) for the scaled tables; DuckDB analyzes the whole database."""
    if engine.kind == "postgresql":
        verb = "ANALYZE" if engine.in_transaction else "VACUUM (ANALYZE)"  # VACUUM refuses transaction blocks
        for table in sorted(rows):
            # VACUUM as well: it sets the visibility map that index-only scans of the covering indexes need.
            engine.execute(f"{verb} {target}.{quote_ident(table)}", None)
    elif engine.kind == "spark":
        for table in sorted(t for t, n in rows.items() if n):  # sizes and rows let joins broadcast the small side
            engine.execute(f"ANALYZE TABLE {target}.{quote_ident(table)} COMPUTE STATISTICS", None)
    else:
        engine.execute("ANALYZE", None)
