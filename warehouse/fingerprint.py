"""The fingerprint of a site's CDM: a hash of what a reload of the CDM changes, cheap enough to read before
every count.

Cached counts are keyed on it (``cohorts.runs.cache_keys``), so it must change whenever the data counting reads
changes, whoever changed it — Soyang's loader or the hospital's own ETL — and must not change for anything else.
It hashes, for the CDM and vocabulary tables counting reads (``omop_ddl.COUNTED_CDM_TABLES`` and
``COUNTED_VOCABULARY_TABLES``):

- PostgreSQL: each table's (and each partition's) ``relfilenode``, which TRUNCATE and a drop-and-recreate
  reload change, and its cumulative ``n_tup_ins``/``n_tup_upd``/``n_tup_del`` counters (pg_stat_user_tables),
  which every INSERT, UPDATE, DELETE and COPY moves. Catalog reads only: no table is scanned. ANALYZE,
  VACUUM and autovacuum move none of them (``n_live_tup``, ``reltuples`` and ``relpages`` are left out for
  that reason), and Soyang's own writes go to the results schema, whose tables are not hashed.
- DuckDB: each table's row count (``count(*)``, answered from metadata, no scan), ``estimated_size``
  (duckdb_tables(): every row ever appended, deleted ones included until a checkpoint compacts them), so a
  reload that deletes some rows and inserts as many others still changes it, and the min/max/null statistics
  DuckDB keeps of each table's id, person, concept and start date columns, which a table rewritten with other
  data of the same size almost always changes (a rewrite keeping every count and every extreme is not seen).
  Table oids are not used: DuckDB numbers them afresh each time the file is opened.
- Spark: each table's data files as the catalog lists them (``DataFrame.inputFiles``: the file index of a
  Parquet table, the current snapshot of a Delta table), as a count and a hash of the sorted names. Every write
  Spark makes (an ETL's append, an INSERT OVERWRITE, a table rebuilt and renamed into place) writes new files,
  whose names carry the writing job's unique id, so any change of the data changes the list; reading, caching or
  describing a table changes nothing. One catalog call per table, about 20 ms each: no file or row is read. A
  write that keeps every file name (a tool rewriting a Parquet file in place under its old name) is not seen.
- On every engine: the ``cdm_source`` rows (release dates, vocabulary version, ETL reference: what a CDM's ETL
  conventionally updates) and Soyang's own ``<cdm>.soyang_load`` row when Soyang loaded the CDM (a new one each
  load), and which counted tables are absent.

What it cannot see: a PostgreSQL ETL session's counters reach the statistics when that session goes idle (at
once when it last reported more than a second ago, else within ten seconds, and always when it disconnects);
a count started in that window is keyed on the fingerprint before the change. A statistics reset
(``pg_stat_reset``, crash recovery) or ``VACUUM FULL``/``CLUSTER`` changes the fingerprint without a data change:
the cache is then merely recomputed. With ``track_counts`` off the counters stay at zero and only reloads that
recreate or truncate tables, and ``cdm_source``, are seen (``warehouse.attach`` reports it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from warehouse.engines import Engine, quote_ident
from warehouse.loader import LOAD_TABLE
from warehouse.omop_ddl import COUNTED_CDM_TABLES, COUNTED_VOCABULARY_TABLES, EVENT_TABLES, cdm_tables
from warehouse.spark_catalog import table_names

#: Bump when what is hashed changes: every source then gets a new fingerprint (and its cache is recomputed).
FINGERPRINT_FORMAT = "2"


class SourceSchemas(Protocol):
    """What the fingerprint needs of a source (``warehouse.models.Source``)."""

    cdm_schema: str
    vocabulary_schema: str


def counted_tables(source: SourceSchemas) -> list[tuple[str, str]]:
    """(schema, table) of every table counting reads on ``source``, in a fixed order."""
    tables = [(source.cdm_schema, t) for t in COUNTED_CDM_TABLES]
    tables += [(source.vocabulary_schema, t) for t in COUNTED_VOCABULARY_TABLES]
    return list(dict.fromkeys(tables))


def cdm_fingerprint(engine: Engine, source: SourceSchemas) -> str:
    """The fingerprint of the CDM of ``source`` now (64 hex digits). Raises ``WarehouseError``."""
    parts = fingerprint_parts(engine, source)
    material = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def fingerprint_parts(engine: Engine, source: SourceSchemas) -> dict[str, Any]:
    """What the fingerprint hashes, readable (the attach report and the tests show it)."""
    tables = counted_tables(source)
    present = _present_tables(engine, {schema for schema, _ in tables} | {source.cdm_schema})
    if engine.kind == "postgresql":
        statistics = _postgres_table_state(engine, [t for t in tables if t in present])
    elif engine.kind == "spark":
        statistics = _spark_table_state(engine, [t for t in tables if t in present])
    else:
        statistics = _duckdb_table_state(engine, [t for t in tables if t in present])
    return {
        "format": FINGERPRINT_FORMAT,
        "tables": {f"{schema}.{table}": statistics.get((schema, table), "absent") for schema, table in tables},
        "cdm_source": _rows(engine, source.cdm_schema, "cdm_source", present),
        "soyang_load": _rows(engine, source.cdm_schema, LOAD_TABLE, present),
    }


def _present_tables(engine: Engine, schemas: set[str]) -> set[tuple[str, str]]:
    if engine.kind == "postgresql":
        # pg_class rather than information_schema, whose views check privileges on every table: 10x slower.
        rows = engine.fetchall(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            {"schemas": sorted(schemas)},
        )
        return {(str(schema), str(table)) for schema, table in rows}
    if engine.kind == "spark":  # no information_schema on Spark
        return {(schema, name) for schema, names in table_names(engine, schemas).items() for name in names}
    rows = engine.fetchall(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN "
        f"({', '.join(f'%(s{i})s' for i in range(len(schemas)))})",
        {f"s{i}": schema for i, schema in enumerate(sorted(schemas))},
    )
    return {(str(schema), str(table)) for schema, table in rows}


def _rows(engine: Engine, schema: str, table: str, present: set[tuple[str, str]]) -> list[list[str]] | None:
    """Every row of a small table as text, sorted (``cdm_source`` has one row, ``soyang_load`` one)."""
    if (schema, table) not in present:
        return None
    rows = engine.fetchall(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)}")  # noqa: S608 - quoted names
    return sorted([["" if value is None else str(value) for value in row] for row in rows])


def _postgres_table_state(engine: Engine, tables: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    """Per table: its relfilenode and insert/update/delete counters, summed over its partitions when it has
    any (a partitioned parent has neither storage nor counters of its own). Catalog reads only."""
    if not tables:
        return {}
    # Filtered by name through pg_class's (relname, relnamespace) index; the counters read per table with the
    # functions behind pg_stat_user_tables (the view itself computes them for every table of the database).
    rows = engine.fetchall(
        """
        SELECT n.nspname, c.relname, pc.oid::bigint, pc.relfilenode::bigint,
               pg_stat_get_tuples_inserted(pc.oid), pg_stat_get_tuples_updated(pc.oid),
               pg_stat_get_tuples_deleted(pc.oid)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN LATERAL pg_partition_tree(c.oid) part ON true  -- no rows for a table without partitions
        JOIN pg_class pc ON pc.oid = COALESCE(part.relid, c.oid)
        WHERE c.relname = ANY(%(tables)s) AND n.nspname = ANY(%(schemas)s)
        ORDER BY 1, 2, 3
        """,
        {"tables": sorted({t for _, t in tables}), "schemas": sorted({s for s, _ in tables})},
    )
    wanted = set(tables)
    state: dict[tuple[str, str], list[Any]] = {}
    for schema, table, _relid, relfilenode, inserted, updated, deleted in rows:
        if (str(schema), str(table)) not in wanted:
            continue
        state.setdefault((str(schema), str(table)), []).append(
            [int(relfilenode), int(inserted), int(updated), int(deleted)]
        )
    return state


def _spark_table_state(engine: Engine, tables: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    """Per table: how many data files it has and a hash of their sorted names (see the module). The names are
    read from the catalog's file index through the engine's Spark session, never by reading the files."""
    state: dict[tuple[str, str], list[Any]] = {}
    for schema, table in tables:
        quote_ident(schema), quote_ident(table)  # validated names only reach the catalog
        files = sorted(str(name) for name in engine.session.table(f"`{schema}`.`{table}`").inputFiles())
        digest = hashlib.sha256("\n".join(files).encode("utf-8")).hexdigest()
        state[(schema, table)] = [len(files), digest]
    return state


def _duckdb_table_state(engine: Engine, tables: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    """Per table: its row count (from metadata), rows ever appended (``estimated_size``), and the min, max and
    null flags DuckDB keeps for its key columns (``stats()``: table-wide statistics, read with one row).
    Approximate distinct counts are left out: ANALYZE recomputes them."""
    if not tables:
        return {}
    counts = " UNION ALL ".join(
        f"SELECT {i} AS i, COUNT(*) AS n FROM {quote_ident(schema)}.{quote_ident(table)}"  # noqa: S608 - quoted
        for i, (schema, table) in enumerate(tables)
    )
    by_index = {int(i): int(n) for i, n in engine.fetchall(counts)}
    sizes: dict[tuple[str, str], int] = {}
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, size, names in engine.fetchall(
        "SELECT t.schema_name, t.table_name, t.estimated_size, list(c.column_name ORDER BY c.column_index) "
        "FROM duckdb_tables() t JOIN duckdb_columns() c ON c.database_name = t.database_name "
        "AND c.schema_name = t.schema_name AND c.table_name = t.table_name "
        "WHERE t.database_name = current_database() GROUP BY ALL"
    ):
        sizes[(str(schema), str(table))] = int(size or 0)
        columns[(str(schema), str(table))] = [c for c in names if c in _STATISTICS_COLUMNS.get(str(table), ())]
    # One statement for every table: each table's column statistics as one list of text, read with one row.
    statistics: dict[int, list[str]] = {}
    selects = [
        f"SELECT {i} AS i, [{', '.join(f'CAST(stats({quote_ident(c)}) AS VARCHAR)' for c in columns[(schema, table)])}]"
        f" AS s FROM (SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} LIMIT 1)"  # noqa: S608 - quoted
        for i, (schema, table) in enumerate(tables)
        if by_index[i] and columns.get((schema, table))
    ]
    if selects:
        statistics = {
            int(i): [_APPROX_UNIQUE_RE.sub("", str(v)) for v in values]
            for i, values in engine.fetchall(" UNION ALL ".join(selects))
        }
    return {
        (schema, table): [by_index[i], sizes.get((schema, table), -1), statistics.get(i, [])]
        for i, (schema, table) in enumerate(tables)
    }


#: DuckDB: the columns whose statistics are hashed: each table's first (its id) and, for event tables, the
#: person, concept and start date a criterion reads. Every column would cost a vector read each, 38 ms a count
#: at 22 tables; these few cost a fifth of it and move with any real reload of the events.
_STATISTICS_COLUMNS: dict[str, tuple[str, ...]] = {
    table: (columns[0].name, *next(((p, c, s) for t, p, c, s in EVENT_TABLES if t == table), ()))
    for table, columns in cdm_tables("5.4").items()
    if table in (*COUNTED_CDM_TABLES, *COUNTED_VOCABULARY_TABLES)
}

#: The approximate distinct count in DuckDB's statistics text: ANALYZE recomputes it, so it is not hashed.
_APPROX_UNIQUE_RE = re.compile(r"'approx_unique': \d+,?\s*")
