"""Looking at a CDM that Soyang did not load, before counting on it: what it has, what it lacks, what it costs.

A hospital's CDM is built by its own ETL; Soyang's role there reads the CDM and vocabulary schemas and writes
only its results schema. ``cdm_inspect`` reads (and never writes) the CDM, and proves the results schema writable
inside a transaction it rolls back, so inspecting leaves the warehouse as it was. It reports:

- problems that stop counting (a missing table or column counting reads, a results schema Soyang cannot write):
  the source is then not attached;
- the CDM version (5.3 or 5.4, from the columns, and ``cdm_source.cdm_version`` when present) and ``cdm_source``;
- which parts of Soyang's physical design the schema lacks: the indexes its loader creates
  (``omop_ddl.index_specs``), compared by the columns an index covers, not by its name, and the VACUUM/ANALYZE
  state of each table, with what each missing piece costs and the statement a DBA could run. Soyang itself
  never writes to the CDM schema.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from warehouse.engines import Engine, WarehouseError, create_schema_sql, quote_ident
from warehouse.fingerprint import cdm_fingerprint
from warehouse.omop_ddl import (
    CDM_EXTENSION_COLUMNS,
    COUNTED_CDM_TABLES,
    COUNTED_VOCABULARY_TABLES,
    EVENT_TABLES,
    SOURCE_CONCEPT_INDEXES,
    IndexSpec,
    cdm_tables,
    cluster_sql,
    counted_columns,
    index_specs,
)
from warehouse.spark_catalog import SparkTable, schema_exists, schema_tables

#: Rows of a table that has rows but no statistics yet (never analyzed).
UNKNOWN_ROWS = -1

#: Below this share of all-visible pages, an index-only scan mostly visits the table anyway.
ALL_VISIBLE_MIN = 0.9

_EVENT_CONCEPT = {table: concept for table, _person, concept, _start in EVENT_TABLES}
_SOURCE_CONCEPT = {table: source for table, source, _person, _start in SOURCE_CONCEPT_INDEXES}


@dataclass(frozen=True)
class MissingIndex:
    """An index of Soyang's physical design that no index of the schema covers."""

    spec: IndexSpec
    schema: str
    cost: str

    @property
    def ddl(self) -> str:
        columns = ", ".join(quote_ident(c) for c in self.spec.columns)
        include = f" INCLUDE ({', '.join(quote_ident(c) for c in self.spec.include)})" if self.spec.include else ""
        return (
            f"CREATE INDEX {quote_ident(self.spec.name)} ON {quote_ident(self.schema)}.{quote_ident(self.spec.table)} "
            f"({columns}){include};"
        )


@dataclass(frozen=True)
class TableUpkeep:
    """VACUUM/ANALYZE state of one table (PostgreSQL), and what is wrong with it, if anything."""

    schema: str
    table: str
    rows: int
    last_vacuum: datetime | None
    last_analyze: datetime | None
    all_visible: float | None
    findings: tuple[str, ...] = ()

    @property
    def ddl(self) -> str:
        return f"VACUUM (ANALYZE) {quote_ident(self.schema)}.{quote_ident(self.table)};"


@dataclass
class CdmInspection:
    """What ``cdm_inspect`` found. ``problems`` stop the attach; everything else is information."""

    engine: str
    cdm_version: str
    version_evidence: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cdm_source: dict[str, str] | None = None
    missing_indexes: list[MissingIndex] = field(default_factory=list)
    upkeep: list[TableUpkeep] = field(default_factory=list)
    #: DuckDB: statements storing the event tables in concept order, as Soyang's loader does (whether a file's
    #: tables already are cannot be told cheaply, so they are offered, not demanded).
    reorder: list[str] = field(default_factory=list)
    fingerprint: str = ""
    #: Spark: counted tables without statistics (never analyzed), which Spark plans joins with blind.
    unanalyzed: list[SparkTable] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def cdm_inspect(engine: Engine, *, cdm_schema: str, vocabulary_schema: str, results_schema: str) -> CdmInspection:
    """Inspect the CDM of a source (see the module docstring). Raises ``WarehouseError`` only when the warehouse
    cannot be read at all; everything counting would trip on is a problem of the report instead."""
    if engine.kind == "spark":
        return _spark_inspect(engine, cdm_schema=cdm_schema, vocabulary_schema=vocabulary_schema,
                              results_schema=results_schema)  # fmt: skip
    columns = _columns(engine, {cdm_schema, vocabulary_schema})
    cdm_source = _cdm_source(engine, cdm_schema, columns)
    report = _checked(engine, columns, cdm_schema, vocabulary_schema, cdm_source)
    report.problems += _results_writable(engine, results_schema)
    if not report.ok:
        return report
    rows = _row_estimates(engine, cdm_schema, vocabulary_schema)
    report.missing_indexes = _missing_indexes(engine, report.cdm_version, cdm_schema, vocabulary_schema, rows)
    if engine.kind == "postgresql":
        report.upkeep = _upkeep(engine, cdm_schema, vocabulary_schema)
        report.notes += _postgres_notes(engine, cdm_schema, vocabulary_schema)
    else:
        present = {table: sorted(cols) for (schema, table), cols in columns.items() if schema == cdm_schema}
        report.reorder = cluster_sql(engine.kind, cdm_schema, present)
    report.fingerprint = cdm_fingerprint(engine, _Schemas(cdm_schema, vocabulary_schema))
    return report


def _checked(
    engine: Engine,
    columns: dict[tuple[str, str], set[str]],
    cdm_schema: str,
    vocabulary_schema: str,
    cdm_source: dict[str, str] | None,
) -> CdmInspection:
    """The report with version, missing tables and columns, and extension notes: the same on every engine."""
    version, evidence, version_notes = _detect_version(columns, cdm_schema, cdm_source)
    report = CdmInspection(engine=engine.kind, cdm_version=version, version_evidence=evidence, cdm_source=cdm_source)
    report.notes += version_notes
    report.problems += _missing(columns, version, cdm_schema, vocabulary_schema)
    report.notes += _extension_notes(columns, cdm_schema)
    return report


def _spark_inspect(engine: Engine, *, cdm_schema: str, vocabulary_schema: str, results_schema: str) -> CdmInspection:
    """Spark: tables, columns, types and statistics from the catalog (``warehouse.spark_catalog``: one statement
    per schema), the results schema proven writable by a probe table dropped after, and no indexes (Spark has
    none): what it reports instead is the tables without statistics, which Spark needs to plan joins well."""
    catalog: dict[tuple[str, str], SparkTable] = {}
    absent = []
    for schema in sorted({cdm_schema, vocabulary_schema}):
        tables = schema_tables(engine, schema)
        if tables is None:
            absent.append(schema)
        catalog.update({(schema, name): table for name, table in (tables or {}).items()})
    if absent:
        return CdmInspection(
            engine=engine.kind,
            cdm_version="",
            problems=[
                f"schema {schema} does not exist in the Spark catalog (or the token may not see it): check "
                "--cdm-schema and --vocabulary-schema"
                for schema in absent
            ],
        )
    columns = {key: set(table.columns) for key, table in catalog.items()}
    cdm_source = None
    if (cdm_schema, "cdm_source") in catalog:
        cdm_source = _cdm_source(engine, cdm_schema, columns, ordered=list(catalog[(cdm_schema, "cdm_source")].columns))
    report = _checked(engine, columns, cdm_schema, vocabulary_schema, cdm_source)
    report.problems += _spark_results_writable(engine, results_schema)
    if not report.ok:
        return report
    counted = [(cdm_schema, t) for t in COUNTED_CDM_TABLES]
    counted += [(vocabulary_schema, t) for t in COUNTED_VOCABULARY_TABLES]
    for key in counted:
        table = catalog[key]
        if table.is_view:
            report.notes.append(
                f"{table.schema}.{table.name} is a view: the fingerprint cannot see changes behind it, so counts "
                "cached on this site may outlive a reload of what it shows; update cdm_source (its release date) "
                "with every reload"
            )
        elif table.rows is None:
            report.unanalyzed.append(table)
    report.fingerprint = cdm_fingerprint(engine, _Schemas(cdm_schema, vocabulary_schema))
    return report


def _spark_results_writable(engine: Engine, results_schema: str) -> list[str]:
    """Spark has no transactions to roll a probe back: create what a generation creates (the schema if missing,
    a Parquet table partitioned by cohort id, one partition overwritten, a cached temporary view), then drop
    all of it again, the schema only when the probe created it."""
    schema = quote_ident(results_schema)
    probe = f"{schema}.{quote_ident('soyang_attach_probe_' + uuid.uuid4().hex[:12])}"
    created = False
    step = f"create schema {results_schema}"
    try:
        if not schema_exists(engine, results_schema):
            engine.execute(create_schema_sql(engine.kind, results_schema))
            created = True
        step = f"create a table in schema {results_schema}"
        engine.execute(
            f"CREATE TABLE {probe} (person_id BIGINT, cohort_definition_id BIGINT) USING parquet "
            "PARTITIONED BY (cohort_definition_id)"
        )
        step = f"write a partition of a table in schema {results_schema}"
        engine.execute(f"INSERT OVERWRITE TABLE {probe} PARTITION (cohort_definition_id = 1) (person_id) SELECT 1")
        step = "cache a temporary view (cohort queries stage their events in them)"
        engine.execute("CACHE TABLE soyang_attach_temp AS SELECT 1 AS person_id")
    except WarehouseError as exc:
        reason = str(exc).split("\n")[0]
        return [
            f"Soyang cannot {step}: {reason} (it needs to create and write tables in schema {results_schema}: "
            "on Databricks, USE SCHEMA, CREATE TABLE and MODIFY on it)"
        ]
    finally:
        _spark_drop_quietly(engine, "DROP VIEW IF EXISTS soyang_attach_temp", f"DROP TABLE IF EXISTS {probe}")
        if created:
            _spark_drop_quietly(engine, f"DROP SCHEMA IF EXISTS {schema}")
    return []


def _spark_drop_quietly(engine: Engine, *statements: str) -> None:
    for statement in statements:
        try:
            engine.execute(statement)
        except WarehouseError:
            pass  # the server went away: the probe's problem, if any, is already reported


@dataclass(frozen=True)
class _Schemas:
    cdm_schema: str
    vocabulary_schema: str


# ---------------------------------------------------------------------------------------------------------------
# Tables, columns, version
# ---------------------------------------------------------------------------------------------------------------


def _columns(engine: Engine, schemas: set[str]) -> dict[tuple[str, str], set[str]]:
    """(schema, table) → its columns, for every table or view of ``schemas`` the role can see."""
    names = sorted(schemas)
    rows = engine.fetchall(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema IN "
        f"({', '.join(f'%(s{i})s' for i in range(len(names)))})",
        {f"s{i}": name for i, name in enumerate(names)},
    )
    found: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        found.setdefault((str(schema), str(table).lower()), set()).add(str(column).lower())
    return found


def _cdm_source(
    engine: Engine, cdm_schema: str, columns: dict[tuple[str, str], set[str]], ordered: list[str] | None = None
) -> dict[str, str] | None:
    """The first row of ``cdm_source`` by column; ``ordered``: its columns in order, when already known."""
    if (cdm_schema, "cdm_source") not in columns:
        return None
    table = f"{quote_ident(cdm_schema)}.{quote_ident('cdm_source')}"
    row = engine.fetchone(f"SELECT * FROM {table}")  # noqa: S608 - quoted identifiers
    if row is None:
        return {}
    names = ordered if ordered is not None else _ordered_columns(engine, cdm_schema, "cdm_source")
    return {name: "" if value is None else str(value) for name, value in zip(names, row, strict=False)}


def _ordered_columns(engine: Engine, schema: str, table: str) -> list[str]:
    rows = engine.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %(s)s AND table_name = %(t)s "
        "ORDER BY ordinal_position",
        {"s": schema, "t": table},
    )
    return [str(r[0]).lower() for r in rows]


def _detect_version(
    columns: dict[tuple[str, str], set[str]], cdm_schema: str, cdm_source: dict[str, str] | None
) -> tuple[str, list[str], list[str]]:
    """The version the tables and columns belong to; ``cdm_source.cdm_version`` decides when they do not tell."""
    v53, v54 = cdm_tables("5.3"), cdm_tables("5.4")
    evidence: dict[str, list[str]] = {"5.3": [], "5.4": []}
    for (schema, table), present in sorted(columns.items()):
        if schema != cdm_schema:
            continue
        if table in v53 and table not in v54:
            evidence["5.3"].append(table)
        elif table in v54 and table not in v53:
            evidence["5.4"].append(table)
        elif table in v53 and table in v54:
            only53 = {c.name for c in v53[table]} - {c.name for c in v54[table]}
            only54 = {c.name for c in v54[table]} - {c.name for c in v53[table]}
            evidence["5.3"] += [f"{table}.{c}" for c in sorted(only53 & present)]
            evidence["5.4"] += [f"{table}.{c}" for c in sorted(only54 & present)]
    declared = None
    if cdm_source and (match := re.search(r"5\.[34]", cdm_source.get("cdm_version", ""))):
        declared = match.group(0)
    notes: list[str] = []
    by_columns = None
    if len(evidence["5.4"]) > len(evidence["5.3"]):
        by_columns = "5.4"
    elif len(evidence["5.3"]) > len(evidence["5.4"]):
        by_columns = "5.3"
    if evidence["5.3"] and evidence["5.4"]:
        notes.append(
            "the tables mix CDM versions: v5.3 only "
            + ", ".join(evidence["5.3"][:5])
            + "; v5.4 only "
            + ", ".join(evidence["5.4"][:5])
        )
    if by_columns and declared and declared != by_columns:
        notes.append(
            f"cdm_source.cdm_version says {cdm_source.get('cdm_version') if cdm_source else ''!s} but the columns are "
            f"those of CDM {by_columns}: the columns decide (they are what the SQL reads)"
        )
    version = by_columns or declared or "5.4"
    return version, evidence[version][:8], notes


def _missing(
    columns: dict[tuple[str, str], set[str]], version: str, cdm_schema: str, vocabulary_schema: str
) -> list[str]:
    """One message per table or column counting reads that the CDM lacks."""
    problems = []
    for table, wanted in counted_columns(version).items():
        schema = vocabulary_schema if table in COUNTED_VOCABULARY_TABLES else cdm_schema
        present = columns.get((schema, table))
        if present is None:
            problems.append(f"table {schema}.{table} is missing (or the role cannot read it): counting reads it")
            continue
        problems += [
            f"column {schema}.{table}.{column} is missing (CDM {version} has it; counting reads the table)"
            for column in wanted
            if column not in present
        ]
    return problems


def _extension_notes(columns: dict[tuple[str, str], set[str]], cdm_schema: str) -> list[str]:
    lacking = [
        f"{table}.{column}" if (cdm_schema, table) in columns else table
        for table, wanted in CDM_EXTENSION_COLUMNS.items()
        for column in wanted
        if column not in columns.get((cdm_schema, table), set())
    ]
    if not lacking:
        return []
    return [
        f"no {', '.join(dict.fromkeys(lacking))} (outside CDM 5.3/5.4): definitions on a care site's or person's "
        "location region (Circe's PlaceOfServiceLocation, LocationRegion) cannot be counted here; any other can"
    ]


# ---------------------------------------------------------------------------------------------------------------
# Results schema
# ---------------------------------------------------------------------------------------------------------------


def _results_writable(engine: Engine, results_schema: str) -> list[str]:
    """Create the results schema (if missing), a table in it, a row and a temporary table, then roll all of it
    back: what every count does. Both engines run DDL in transactions, so nothing is left behind."""
    probe = f"{quote_ident(results_schema)}.{quote_ident('soyang_attach_probe')}"
    step = f"create schema {results_schema}"
    try:
        with engine.transaction():
            engine.execute(create_schema_sql(engine.kind, results_schema))
            step = f"create a table in schema {results_schema}"
            engine.execute(f"CREATE TABLE {probe} (person_id BIGINT)")
            step = f"write a row in schema {results_schema}"
            engine.execute(f"INSERT INTO {probe} (person_id) VALUES (1)")  # noqa: S608 - quoted identifiers
            step = "create a temporary table (cohort queries stage their events in them)"
            engine.execute("CREATE TEMPORARY TABLE soyang_attach_temp (person_id BIGINT)")
            raise _RollBack
    except _RollBack:
        return []
    except WarehouseError as exc:
        reason = str(exc).split("\n")[0]
        grant = (
            f"GRANT USAGE, CREATE ON SCHEMA {results_schema} TO <role>, and TEMPORARY on the database"
            if engine.kind == "postgresql"
            else "a DuckDB file that this process can write"
        )
        return [f"Soyang cannot {step}: {reason} (it needs {grant})"]


class _RollBack(Exception):
    """Raised inside the probe's transaction to roll it back after a successful probe."""


# ---------------------------------------------------------------------------------------------------------------
# Physical design
# ---------------------------------------------------------------------------------------------------------------


def _row_estimates(engine: Engine, cdm_schema: str, vocabulary_schema: str) -> dict[str, int]:
    """Rows per counted table (estimates on PostgreSQL, from the catalog; exact on DuckDB, from metadata)."""
    tables = [(cdm_schema, t) for t in COUNTED_CDM_TABLES] + [(vocabulary_schema, t) for t in COUNTED_VOCABULARY_TABLES]
    if engine.kind == "postgresql":
        rows = engine.fetchall(
            "SELECT n.nspname, c.relname, GREATEST(c.reltuples, COALESCE(s.n_live_tup, 0))::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE n.nspname || '.' || c.relname = ANY(%(names)s)",
            {"names": [f"{s}.{t}" for s, t in tables]},
        )
        estimates = {}
        for schema, table, n in rows:
            if int(n) <= 0:
                # Never analyzed, and no statistics yet: whether it is empty is one page away.
                name = f"{quote_ident(str(schema))}.{quote_ident(str(table))}"
                one = engine.fetchone(f"SELECT EXISTS (SELECT 1 FROM {name})")  # noqa: S608 - quoted identifiers
                n = UNKNOWN_ROWS if one and one[0] else 0
            estimates[str(table)] = int(n)
        return estimates
    rows = engine.fetchall(
        "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN (%(c)s, %(v)s)",
        {"c": cdm_schema, "v": vocabulary_schema},
    )
    return {str(table): int(n or 0) for table, n in rows}


def _existing_indexes(engine: Engine, schemas: set[str]) -> dict[tuple[str, str], list[tuple[list[str], set[str]]]]:
    """(schema, table) → each plain index as (key columns in order, key and included columns)."""
    found: dict[tuple[str, str], list[tuple[list[str], set[str]]]] = {}
    names = sorted(schemas)
    if engine.kind == "postgresql":
        rows = engine.fetchall(
            """
            SELECT n.nspname, t.relname, i.indexrelid::bigint, i.indnkeyatts, k.ord, a.attname
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE n.nspname = ANY(%(schemas)s) AND i.indpred IS NULL
            ORDER BY 1, 2, 3, 5
            """,
            {"schemas": names},
        )
        per_index: dict[int, tuple[str, str, int, list[str | None]]] = {}
        for schema, table, index, nkeys, _ord, column in rows:
            entry = per_index.setdefault(int(index), (str(schema), str(table), int(nkeys), []))
            entry[3].append(None if column is None else str(column))
        for schema, table, nkeys, cols in per_index.values():
            if any(c is None for c in cols):
                continue  # an expression index: not one of Soyang's
            plain = [c for c in cols if c is not None]
            found.setdefault((schema, table), []).append((plain[:nkeys], set(plain)))
        return found
    rows = engine.fetchall(
        "SELECT schema_name, table_name, expressions FROM duckdb_indexes() WHERE database_name = current_database()"
    )
    for schema, table, expressions in rows:
        if str(schema) not in schemas:
            continue
        text = expressions if isinstance(expressions, str) else ", ".join(str(e) for e in (expressions or []))
        cols = [c.strip().strip('"').lower() for c in text.strip("[]").split(",") if c.strip()]
        found.setdefault((str(schema), str(table)), []).append((cols, set(cols)))
    return found


def _covered(spec: IndexSpec, indexes: list[tuple[list[str], set[str]]]) -> bool:
    """An index covers the spec when its key starts with the spec's key columns and it holds every column the
    spec includes: the same scans are then possible, whatever its name."""
    wanted = list(spec.columns)
    return any(keys[: len(wanted)] == wanted and set(spec.include) <= held for keys, held in indexes)


def _missing_indexes(
    engine: Engine, version: str, cdm_schema: str, vocabulary_schema: str, rows: dict[str, int]
) -> list[MissingIndex]:
    existing = _existing_indexes(engine, {cdm_schema, vocabulary_schema})
    missing = []
    for spec in index_specs(engine.kind, version):
        if spec.table not in COUNTED_CDM_TABLES and spec.table not in COUNTED_VOCABULARY_TABLES:
            continue  # vocabulary search tables (synonyms, mappings) serve the portal's copy, not counting
        schema = vocabulary_schema if spec.table in COUNTED_VOCABULARY_TABLES else cdm_schema
        if _covered(spec, existing.get((schema, spec.table), [])) or not rows.get(spec.table, 0):
            continue  # covered, or an empty table, where an index costs nothing to lack (checked again each attach)
        missing.append(MissingIndex(spec=spec, schema=schema, cost=_index_cost(spec, rows.get(spec.table, 0))))
    return missing


def _index_cost(spec: IndexSpec, rows: int) -> str:
    size = "rows not counted: never analyzed" if rows == UNKNOWN_ROWS else f"{rows:,} rows"
    table, first = spec.table, spec.columns[0]
    if table == "observation_period":
        return (
            f"every entry event is matched to its observation period by reading all of observation_period ({size}) "
            "into a hash join, instead of the person's periods from the index"
        )
    if first == _EVENT_CONCEPT.get(table):
        included = " with the columns criteria read (index-only scans)" if spec.include else ""
        return (
            f"a criterion on {table} reads the whole table ({size}) to find the events of its concept set, instead "
            f"of only those events through the concept index{included}"
        )
    if first == _SOURCE_CONCEPT.get(table):
        return f"criteria on source concepts (e.g. ICD codes) and custom-era exits read the whole of {table} ({size})"
    if first == "person_id":
        return (
            f'correlated criteria on {table} ("with at least one … before the index") look up each person\'s events '
            f"by scanning {table} ({size}) rather than the person's rows"
        )
    return (
        f"resolving concept sets looks up {table} by {', '.join(spec.columns)} by scanning it ({size}) "
        "for every concept set"
    )


def _upkeep(engine: Engine, cdm_schema: str, vocabulary_schema: str) -> list[TableUpkeep]:
    tables = [(cdm_schema, t) for t in COUNTED_CDM_TABLES] + [(vocabulary_schema, t) for t in COUNTED_VOCABULARY_TABLES]
    rows = engine.fetchall(
        """
        SELECT n.nspname, c.relname, GREATEST(c.reltuples, COALESCE(s.n_live_tup, 0))::bigint,
               GREATEST(s.last_vacuum, s.last_autovacuum), GREATEST(s.last_analyze, s.last_autoanalyze),
               c.relpages, c.relallvisible
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE c.relkind = 'r' AND n.nspname || '.' || c.relname = ANY(%(names)s)
        ORDER BY 1, 2
        """,
        {"names": [f"{s}.{t}" for s, t in tables]},
    )
    upkeep = []
    for schema, table, n, vacuumed, analyzed, pages, visible in rows:
        all_visible = (int(visible) / int(pages)) if pages else None
        findings: list[str] = []
        if int(n) > 0 and analyzed is None:
            unvacuumed = (
                "; nor vacuumed: index-only scans need the visibility map that VACUUM sets" if vacuumed is None else ""
            )
            findings.append(
                f"{table} has never been analyzed: the planner guesses its row counts and may pick nested loops "
                f"or sequential scans that take far longer than the plan it would choose with statistics{unvacuumed}"
            )
        if all_visible is not None and all_visible < ALL_VISIBLE_MIN and int(n) > 0:
            when = "never vacuumed" if vacuumed is None else f"last vacuumed {vacuumed:%Y-%m-%d}"
            findings.append(
                f"only {all_visible:.0%} of {table}'s pages are all-visible ({when}): an index-only scan still "
                "reads the table for the other pages, so the covering indexes save little until VACUUM runs"
            )
        upkeep.append(
            TableUpkeep(
                schema=str(schema),
                table=str(table),
                rows=int(n),
                last_vacuum=vacuumed,
                last_analyze=analyzed,
                all_visible=all_visible,
                findings=tuple(findings),
            )
        )
    return upkeep


def _postgres_notes(engine: Engine, cdm_schema: str, vocabulary_schema: str) -> list[str]:
    notes = []
    row = engine.fetchone("SELECT current_setting('track_counts')")
    if row and str(row[0]) != "on":
        notes.append(
            "track_counts is off: the fingerprint then sees only reloads that recreate or truncate tables, and "
            "changes of cdm_source; turn it on (the default) so that any ETL change is seen"
        )
    kinds = engine.fetchall(
        "SELECT n.nspname || '.' || c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN (%(c)s, %(v)s) AND c.relkind IN ('v', 'm', 'f') AND c.relname = ANY(%(t)s)",
        {"c": cdm_schema, "v": vocabulary_schema, "t": [*COUNTED_CDM_TABLES, *COUNTED_VOCABULARY_TABLES]},
    )
    for name, kind in kinds:
        what = {"v": "a view", "m": "a materialized view", "f": "a foreign table"}[str(kind)]
        notes.append(
            f"{name} is {what}: the fingerprint cannot see changes behind it, so counts cached on this site may "
            "outlive a reload of what it shows; update cdm_source (its release date) with every reload"
        )
    return notes


def describe(report: CdmInspection) -> list[str]:
    """The report as lines for people (the ``attach_source`` command prints them)."""
    lines: list[str] = []
    if report.problems:
        lines.append("Cannot attach:")
        lines += [f"  - {p}" for p in report.problems]
    evidence = f" (from {', '.join(report.version_evidence)})" if report.version_evidence else ""
    lines.append(f"CDM version: {report.cdm_version}{evidence}")
    if report.cdm_source is None:
        lines.append("cdm_source: no such table (its release date and vocabulary version are not known)")
    else:
        shown = {
            k: report.cdm_source.get(k, "")
            for k in (
                "cdm_source_name",
                "cdm_holder",
                "source_release_date",
                "cdm_release_date",
                "cdm_version",
                "vocabulary_version",
                "cdm_etl_reference",
            )
        }
        lines.append("cdm_source: " + ("; ".join(f"{k} {v}" for k, v in shown.items() if v) or "empty"))
    lines += [f"Note: {n}" for n in report.notes]
    if not report.ok:
        return lines
    if report.engine == "spark":
        lines += _spark_design(report)
    elif report.missing_indexes:
        lines.append(f"Indexes of Soyang's physical design this schema lacks ({len(report.missing_indexes)}):")
        for missing in report.missing_indexes:
            lines.append(f"  - {missing.spec.table} ({', '.join(missing.spec.columns)}): {missing.cost}")
    else:
        lines.append("Indexes: every index of Soyang's physical design is covered.")
    neglected = [u for u in report.upkeep if u.findings]
    for upkeep in neglected:
        lines += [f"  - {finding}" for finding in upkeep.findings]
    if report.reorder:
        lines.append(
            "DuckDB event tables stored in (concept, person, start date) order let a criterion skip the row groups "
            "of other concepts (condition_occurrence at 1M persons: 90 ms to 5 ms per concept-set scan); Soyang's "
            "loader stores them so, and the statements below do it for this file (each rewrites a table)."
        )
    ddl = [m.ddl for m in report.missing_indexes] + [u.ddl for u in neglected] + [f"{s};" for s in report.reorder]
    # Backquotes: a DBA's Spark SQL session does not have Soyang's double-quoted identifiers turned on.
    ddl += [f"ANALYZE TABLE `{t.schema}`.`{t.name}` COMPUTE STATISTICS;" for t in report.unanalyzed]
    if ddl:
        lines.append("Statements a DBA could run (Soyang never writes to the CDM schema):")
        lines += [f"  {statement}" for statement in ddl]
    lines.append(f"Fingerprint: {report.fingerprint}")
    return lines


def _spark_design(report: CdmInspection) -> list[str]:
    lines = [
        "Indexes: Spark has none, so there are none to propose; counting reads the Parquet or Delta files of each "
        "table, skipping columns it does not need and row groups its filters exclude."
    ]
    if report.unanalyzed:
        names = ", ".join(t.name for t in report.unanalyzed)
        lines.append(
            f"Tables without statistics ({len(report.unanalyzed)}: {names}): Spark cannot tell their size, so it "
            "shuffles both sides of every join with them instead of broadcasting the small side (the vocabulary "
            "and observation_period joins of every criterion); Soyang's loader analyzes each table it writes."
        )
    else:
        lines.append("Statistics: every table counting reads has been analyzed.")
    return lines


def inspection_detail(report: CdmInspection) -> dict[str, Any]:
    """What the audit log keeps of an attach: no data, only the shape of the CDM."""
    return {
        "cdm_version": report.cdm_version,
        "fingerprint": report.fingerprint,
        "cdm_source": report.cdm_source,
        "missing_indexes": [m.spec.name for m in report.missing_indexes],
        "tables_needing_upkeep": [u.table for u in report.upkeep if u.findings] + [t.name for t in report.unanalyzed],
    }
