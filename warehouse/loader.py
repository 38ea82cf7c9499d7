"""Load an OMOP CDM CSV export (v5.3 or v5.4) into a warehouse schema, replacing what was there.

Input: one file per table, ``TABLE.csv`` or ``TABLE.csv.gz``, in lower or upper case, with a header row,
comma-separated or TAB-separated (Athena vocabulary downloads; sniffed from the header line), an empty field
meaning NULL. Files whose name is not a CDM table are ignored.

Guarantees:

- All or nothing. Every file is checked (name, header) before the database is touched; a bad row stops the
  load with a ``LoadError`` naming the file and line, and the schema keeps its previous content.
  PostgreSQL: the data is bulk-loaded (COPY) and indexed in ``<cdm>__staging``, then one short transaction drops
  the old schema and renames the staging schema (readers wait at most for that swap). DuckDB has no
  ``ALTER SCHEMA … RENAME``, and renaming indexed tables is refused, so the whole load runs in one transaction
  (DuckDB's MVCC keeps readers on the old data until the commit).
- Loading again replaces, never appends: the target schema is owned by the loader and recreated each time.
- ``<cdm>.soyang_load`` holds one row with a new fingerprint (uuid4 hex), the CDM version and the load time,
  written in the same swap, so a cache keyed on the fingerprint can never see new data with an old key.

Quirk policy: an empty field in a NOT NULL text column (e.g. ``vocabulary.vocabulary_reference`` in real
exports) is loaded as an empty string rather than rejected; an empty field anywhere else is NULL, so an empty
NOT NULL number or date is still an error. Date columns accept ``1963-12-31 00:00:00`` (the time is dropped).
"""

from __future__ import annotations

import csv
import gzip
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from warehouse.engines import Engine, WarehouseError, quote_ident
from warehouse.omop_ddl import (
    CDM_VERSIONS,
    REQUIRED_TABLES,
    Column,
    cdm_tables,
    check_version,
    cluster_sql,
    create_table_sql,
    index_sql,
)

LOAD_TABLE = "soyang_load"

#: Schemas the loader must never drop and recreate.
RESERVED_SCHEMAS = {"public", "main", "information_schema", "pg_catalog", "pg_toast", "temp"}

_FILE_RE = re.compile(r"^(?P<table>[A-Za-z_][A-Za-z0-9_]*)\.csv(?:\.gz)?$", re.IGNORECASE)


class LoadError(WarehouseError):
    """The export cannot be loaded; the message names the file (and line) at fault. Nothing was changed."""


@dataclass(frozen=True)
class LoadReport:
    """What a load did: rows per table (every CDM table, 0 when there was no file), version, fingerprint."""

    cdm_schema: str
    cdm_version: str
    fingerprint: str
    loaded_at: datetime
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        """Rows loaded over all tables."""
        return sum(self.rows.values())


@dataclass(frozen=True)
class CsvFile:
    """One input file: the CDM table it feeds, its delimiter and header columns (lower case)."""

    path: Path
    table: str
    delimiter: str
    columns: tuple[str, ...]


def load_cdm_directory(
    engine: Engine,
    directory: Path,
    *,
    cdm_schema: str,
    cdm_version: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> LoadReport:
    """Replace ``cdm_schema`` with the CDM export in ``directory`` (vocabulary in the same schema).

    ``cdm_version`` "5.3" or "5.4", or None to detect it from the files. ``progress(table, rows)`` is called
    after each table is loaded. Raises ``LoadError``; the schema is then as it was.
    """
    started = time.monotonic()
    directory = Path(directory)
    _check_schema_name(cdm_schema)
    files = find_csv_files(directory)
    version = _resolve_version(files, cdm_version)
    tables = cdm_tables(version)
    _check_files(files, tables, version)

    fingerprint = uuid.uuid4().hex
    loaded_at = datetime.now(UTC)
    previous_timeout = engine.statement_timeout_seconds
    # A load of a real warehouse takes longer than a cohort query may: lift the limit for this connection.
    engine.set_statement_timeout(0)
    try:
        if engine.kind == "postgresql":
            rows = _load_postgresql(engine, files, tables, cdm_schema, version, fingerprint, loaded_at, progress)
        elif engine.kind == "spark":
            rows = _load_spark(engine, files, tables, cdm_schema, version, fingerprint, loaded_at, progress)
        else:
            rows = _load_duckdb(engine, files, tables, cdm_schema, version, fingerprint, loaded_at, progress)
    finally:
        try:
            engine.set_statement_timeout(previous_timeout)
        except WarehouseError:
            pass  # the connection failed; the LoadError already raised says why
    return LoadReport(
        cdm_schema=cdm_schema,
        cdm_version=version,
        fingerprint=fingerprint,
        loaded_at=loaded_at,
        rows=rows,
        seconds=time.monotonic() - started,
    )


# ---------------------------------------------------------------------------------------------------------------
# Checking the input
# ---------------------------------------------------------------------------------------------------------------


def find_csv_files(directory: Path) -> dict[str, CsvFile]:
    """The CSV files of ``directory`` by lower-case table name, with their sniffed delimiter and header."""
    if not directory.is_dir():
        raise LoadError(f"{directory} is not a directory")
    found: dict[str, CsvFile] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE_RE.match(path.name)
        if not match or not path.is_file():
            continue
        table = match.group("table").lower()
        if table in found:
            raise LoadError(f"{path.name}: two files for table {table} ({found[table].path.name} and {path.name})")
        delimiter, columns = _read_header(path)
        found[table] = CsvFile(path=path, table=table, delimiter=delimiter, columns=columns)
    return found


def _read_header(path: Path) -> tuple[str, tuple[str, ...]]:
    try:
        if path.name.lower().endswith(".gz"):
            handle = gzip.open(path, "rt", encoding="utf-8-sig", newline="")
        else:
            handle = path.open("r", encoding="utf-8-sig", newline="")
        with handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise LoadError(f"{path.name}, line 1: cannot read the header: {exc}") from exc
    if not line.strip():
        raise LoadError(f"{path.name}, line 1: the file is empty (a header row is required)")
    delimiter = "\t" if "\t" in line else ","
    # Athena TAB files are unquoted: read the header the same way the loader will read the rows.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    header = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter, quoting=quoting))
    return delimiter, tuple(name.strip().lower() for name in header)


def _check_schema_name(schema: str) -> None:
    try:
        quote_ident(schema)
        quote_ident(f"{schema}__staging")
    except ValueError as exc:
        raise LoadError(f"bad CDM schema name {schema!r}: {exc}") from exc
    if schema in RESERVED_SCHEMAS:
        raise LoadError(f"the CDM schema cannot be {schema!r}: the loader drops and recreates its schema")


def _resolve_version(files: dict[str, CsvFile], cdm_version: str | None) -> str:
    if cdm_version is not None:
        try:
            return check_version(cdm_version)
        except ValueError as exc:
            raise LoadError(str(exc)) from exc
    return detect_cdm_version(files)


def detect_cdm_version(files: dict[str, CsvFile]) -> str:
    """The CDM version the files' tables and columns belong to.

    Evidence is any table or column that exists in only one version (v5.4: ``episode``,
    ``visit_occurrence.admitted_from_concept_id``, ``procedure_occurrence.procedure_end_date``…; v5.3:
    ``attribute_definition``, ``visit_occurrence.admitting_source_concept_id``…). With no evidence either way
    the tables present are the same in both versions, and "5.4", the current one, is chosen.
    """
    v53, v54 = cdm_tables("5.3"), cdm_tables("5.4")
    evidence: dict[str, list[str]] = {"5.3": [], "5.4": []}
    for table, csv_file in files.items():
        in53, in54 = table in v53, table in v54
        if in53 and not in54:
            evidence["5.3"].append(table)
        elif in54 and not in53:
            evidence["5.4"].append(table)
        elif in53 and in54:
            names53 = {c.name for c in v53[table]}
            names54 = {c.name for c in v54[table]}
            for column in csv_file.columns:
                if column in names53 and column not in names54:
                    evidence["5.3"].append(f"{table}.{column}")
                elif column in names54 and column not in names53:
                    evidence["5.4"].append(f"{table}.{column}")
    if evidence["5.3"] and evidence["5.4"]:
        raise LoadError(
            "the files mix CDM versions: v5.3 only "
            + ", ".join(evidence["5.3"][:5])
            + "; v5.4 only "
            + ", ".join(evidence["5.4"][:5])
            + " (set the CDM version explicitly to find the files at fault)"
        )
    return "5.3" if evidence["5.3"] else "5.4"


def _check_files(files: dict[str, CsvFile], tables: dict[str, tuple[Column, ...]], version: str) -> None:
    other = cdm_tables(next(v for v in CDM_VERSIONS if v != version))
    for table, csv_file in files.items():
        if table not in tables:
            if table in other:
                raise LoadError(f"{csv_file.path.name}: {table} is not a table of CDM {version}")
            continue  # not a CDM file at all (a README export, a source table…): ignored
        known = {c.name for c in tables[table]}
        seen: set[str] = set()
        for column in csv_file.columns:
            if column not in known:
                raise LoadError(
                    f"{csv_file.path.name}, line 1: unknown column {column!r} for table {table} of CDM {version}"
                )
            if column in seen:
                raise LoadError(f"{csv_file.path.name}, line 1: column {column!r} appears twice")
            seen.add(column)
        missing = [c.name for c in tables[table] if c.required and c.name not in seen]
        if missing:
            raise LoadError(
                f"{csv_file.path.name}, line 1: required column(s) {', '.join(missing)} missing for table {table}"
            )
    absent = [t for t in REQUIRED_TABLES if t not in files]
    if absent:
        raise LoadError("required table(s) missing: " + ", ".join(f"{t} (no {t}.csv or {t}.csv.gz)" for t in absent))


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def _create_and_copy(
    engine: Engine,
    files: dict[str, CsvFile],
    tables: dict[str, tuple[Column, ...]],
    schema: str,
    version: str,
    progress: Callable[[str, int], None] | None,
    suffix: str = "",
) -> dict[str, int]:
    """Create every CDM table in ``schema`` (which exists and is empty) and bulk-load the files. ``suffix``: added
    to every table's name (staging tables beside the live ones)."""
    for table in tables:
        engine.execute(create_table_sql(engine.kind, schema, table, version, name=table + suffix))
    rows: dict[str, int] = {}
    for table, columns in tables.items():
        csv_file = files.get(table)
        if csv_file is None:
            rows[table] = 0
            continue
        text_required = [c.name for c in columns if c.required and c.is_text]
        try:
            rows[table] = engine.copy_from_csv(
                f"{quote_ident(schema)}.{quote_ident(table + suffix)}",
                csv_file.path,
                csv_file.columns,
                header=True,
                delimiter=csv_file.delimiter,
                empty_as_text=text_required,
            )
        except WarehouseError as exc:
            raise LoadError(_describe_copy_error(csv_file.path, exc)) from exc
        if progress is not None:
            progress(table, rows[table])
    return rows


def _write_load_row(
    engine: Engine, schema: str, version: str, fingerprint: str, loaded_at: datetime, *, name: str = LOAD_TABLE
) -> None:
    target = f"{quote_ident(schema)}.{quote_ident(name)}"
    if engine.kind == "spark":
        engine.execute(
            f"CREATE TABLE {target} (fingerprint STRING NOT NULL, cdm_version STRING NOT NULL, "
            "loaded_at TIMESTAMP NOT NULL) USING parquet"
        )
    else:
        engine.execute(
            f"CREATE TABLE {target} (fingerprint VARCHAR(32) NOT NULL, cdm_version VARCHAR(5) NOT NULL, "
            "loaded_at TIMESTAMP NOT NULL)"
        )
    # Stored as naive UTC: TIMESTAMP means the same on both engines, whatever the session time zone.
    engine.execute(
        f"INSERT INTO {target} (fingerprint, cdm_version, loaded_at) VALUES (%(f)s, %(v)s, %(t)s)",
        {"f": fingerprint, "v": version, "t": loaded_at.astimezone(UTC).replace(tzinfo=None)},
    )


def _load_postgresql(
    engine: Engine,
    files: dict[str, CsvFile],
    tables: dict[str, tuple[Column, ...]],
    schema: str,
    version: str,
    fingerprint: str,
    loaded_at: datetime,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    staging = f"{schema}__staging"
    try:
        # One transaction for the staging load: a failure leaves no half-filled staging schema behind, and
        # tables created in the same transaction as their COPY skip most WAL on a minimal-WAL server.
        with engine.transaction():
            engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(staging)} CASCADE")
            engine.execute(f"CREATE SCHEMA {quote_ident(staging)}")
            rows = _create_and_copy(engine, files, tables, staging, version, progress)
            for statement in index_sql(engine.kind, staging, version):
                engine.execute(statement)
            _write_load_row(engine, staging, version, fingerprint, loaded_at)
            for table in [*tables, LOAD_TABLE]:
                engine.execute(f"ANALYZE {quote_ident(staging)}.{quote_ident(table)}")
        # The swap: short, and it waits at most a minute for running cohort queries to release the old tables.
        with engine.transaction():
            engine.execute("SET LOCAL lock_timeout = '60s'")
            engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
            engine.execute(f"ALTER SCHEMA {quote_ident(staging)} RENAME TO {quote_ident(schema)}")
        # Index-only scans (the cohort criteria's covering indexes) need the visibility map, which only VACUUM
        # sets, and autovacuum may be off or come late; VACUUM runs outside a transaction (autocommit).
        if not engine.in_transaction:
            for table in tables:
                engine.execute(f"VACUUM {quote_ident(schema)}.{quote_ident(table)}")
        # This session's insert counters are part of the fingerprint (warehouse.fingerprint): published now, before
        # the reply to this statement, rather than whenever the session next idles or ends.
        engine.execute("SELECT pg_stat_force_next_flush()")
    except LoadError:
        raise
    except WarehouseError as exc:
        _drop_quietly(engine, staging)
        raise LoadError(f"loading into schema {schema} failed: {exc}") from exc
    return rows


def _load_duckdb(
    engine: Engine,
    files: dict[str, CsvFile],
    tables: dict[str, tuple[Column, ...]],
    schema: str,
    version: str,
    fingerprint: str,
    loaded_at: datetime,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    catalog = engine.fetchone("SELECT current_database()")
    if catalog and catalog[0] == schema:
        # DuckDB names the database after the file: schema "x" in x.duckdb makes every "x.table" ambiguous.
        raise LoadError(f"the DuckDB file is named {schema}.duckdb: its CDM schema needs another name than {schema}")
    try:
        with engine.transaction():
            engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
            engine.execute(f"CREATE SCHEMA {quote_ident(schema)}")
            rows = _create_and_copy(engine, files, tables, schema, version, progress)
            columns = {table: [c.name for c in cols] for table, cols in tables.items()}
            for statement in [*cluster_sql(engine.kind, schema, columns), *index_sql(engine.kind, schema, version)]:
                engine.execute(statement)
            _write_load_row(engine, schema, version, fingerprint, loaded_at)
        engine.execute("ANALYZE")
    except LoadError:
        raise
    except WarehouseError as exc:
        raise LoadError(f"loading into schema {schema} failed: {exc}") from exc
    return rows


def _load_spark(
    engine: Engine,
    files: dict[str, CsvFile],
    tables: dict[str, tuple[Column, ...]],
    schema: str,
    version: str,
    fingerprint: str,
    loaded_at: datetime,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    """Spark has no transactions (and renames a table only within its schema): every file is loaded into a
    staging table beside the live one (``person__staging``…), and only once all loaded does each replace its
    live table (a drop and a rename, catalog operations). A failed load drops the staging tables and leaves
    ``schema`` as it was."""
    staged = [*tables, LOAD_TABLE]
    try:
        engine.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        _drop_spark_staging(engine, schema, staged)
        rows = _create_and_copy(engine, files, tables, schema, version, progress, suffix=SPARK_STAGING)
        _write_load_row(engine, schema, version, fingerprint, loaded_at, name=LOAD_TABLE + SPARK_STAGING)
        for table in staged:
            target = f"{quote_ident(schema)}.{quote_ident(table)}"
            engine.execute(f"DROP TABLE IF EXISTS {target}")
            engine.execute(f"ALTER TABLE {quote_ident(schema)}.{quote_ident(table + SPARK_STAGING)} RENAME TO {target}")
            if rows.get(table, 1):
                # Table statistics (size, rows) let Spark broadcast the small side of a join instead of shuffling it.
                engine.execute(f"ANALYZE TABLE {target} COMPUTE STATISTICS")
    except LoadError:
        _drop_spark_staging(engine, schema, staged)
        raise
    except WarehouseError as exc:
        _drop_spark_staging(engine, schema, staged)
        raise LoadError(f"loading into schema {schema} failed: {exc}") from exc
    return rows


#: The suffix of a Spark load's staging tables.
SPARK_STAGING = "__staging"


def _drop_spark_staging(engine: Engine, schema: str, tables: list[str]) -> None:
    for table in tables:
        try:
            engine.execute(f"DROP TABLE IF EXISTS {quote_ident(schema)}.{quote_ident(table + SPARK_STAGING)}")
        except WarehouseError:
            pass  # the connection is gone: the next load drops the leftover staging tables first


def _drop_quietly(engine: Engine, schema: str) -> None:
    try:
        engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    except WarehouseError:
        pass  # the connection is gone: the next load drops the leftover staging schema first


_PG_LINE_RE = re.compile(r"CONTEXT:\s+COPY [^,]+, line (\d+)")
_DUCK_LINE_RE = re.compile(r"CSV Error on Line: (\d+)")


def _describe_copy_error(path: Path, exc: WarehouseError) -> str:
    """``FILE, line N: what is wrong`` from a COPY (PostgreSQL) or read_csv (DuckDB) error."""
    text = str(exc)
    line = None
    if match := _PG_LINE_RE.search(text):
        line = match.group(1)
        reason = text[: match.start()].split("HINT:")[0].strip()
    elif match := _DUCK_LINE_RE.search(text):
        line = match.group(1)
        # DuckDB's message: "CSV Error on Line: N", "Original Line: …", then the reason, then advice.
        paragraph = text[match.end() :].split("\n\n")[0].split("Possible fixes:")[0]
        reasons = [part.strip() for part in paragraph.splitlines()[1:] if part.strip()]
        reason = "; ".join(r for r in reasons if not r.startswith("Original Line:")) or text.splitlines()[0]
    else:
        reason = text.split("\n\n")[0].replace("\n", " ")
    where = f"{path.name}, line {line}" if line else path.name
    return f"{where}: {reason}"
