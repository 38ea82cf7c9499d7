"""A CDM as a hospital's ETL leaves it: tables made and filled by plain SQL from the shared GiBleed CSVs, with
no Soyang loader (no indexes, no ``soyang_load``, no ANALYZE or VACUUM), read by Soyang under a role that may
only read the CDM and write its results schema (PostgreSQL; trust authentication on 127.0.0.1).

The table definitions are those of the CDM specification (``omop_ddl.create_table_sql``): a hospital's CDM
made with the OHDSI DDL has the same tables and columns.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg2
from psycopg2 import sql

from warehouse.omop_ddl import COUNTED_CDM_TABLES, COUNTED_VOCABULARY_TABLES, create_table_sql

#: The tables a plain CDM gets: everything counting reads, and cdm_source.
PLAIN_TABLES = (*COUNTED_CDM_TABLES, *COUNTED_VOCABULARY_TABLES, "cdm_source")


@dataclass(frozen=True)
class PlainCdm:
    """Where a plain CDM is: its engine, the URL Soyang connects with (the restricted role on PostgreSQL), the
    owner's URL (the hospital's ETL), and its schemas."""

    kind: str
    url: str
    owner_url: str
    cdm_schema: str
    results_schema: str
    role: str = ""

    @property
    def vocabulary_schema(self) -> str:
        return self.cdm_schema

    def etl(self, *statements: str) -> None:
        """Run statements as the hospital's ETL does: as the owner, committed, on a connection closed after."""
        if self.kind == "postgresql":
            connection = psycopg2.connect(self.owner_url)
            try:
                connection.autocommit = True
                with connection.cursor() as cursor:
                    for statement in statements:
                        cursor.execute(statement)
                    # Publish the session's counters before closing, as an ETL session does when it idles or ends,
                    # only deterministically (the fingerprint reads them).
                    cursor.execute("SELECT pg_stat_force_next_flush()")
            finally:
                connection.close()
            return
        duck = duckdb.connect(duckdb_file(self.owner_url))
        try:
            for statement in statements:
                duck.execute(statement)
        finally:
            duck.close()


def duckdb_file(url: str) -> str:
    return url.removeprefix("duckdb:///")


def _csv(data: Path, table: str) -> Path | None:
    path = data / f"{table}.csv.gz"
    return path if path.is_file() else None


def _header(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [c.strip().lower() for c in handle.readline().strip().split(",")]


@contextmanager
def plain_postgres_cdm(
    admin_url: str, data: Path, *, tables: Iterable[str] = PLAIN_TABLES, drop_columns: Iterable[str] = ()
) -> Iterator[PlainCdm]:
    """A plain CDM in a new schema of the database at ``admin_url`` (a superuser's URL), a results schema, and a
    new role that may read the CDM and write the results schema only; all dropped on exit.

    ``tables`` limits the tables made; ``drop_columns`` (``table.column``) are dropped once the tables are filled.
    """
    suffix = uuid.uuid4().hex[:8]
    cdm, results, role = f"plain_{suffix}", f"plain_{suffix}_results", f"soyang_reader_{suffix}"
    parts = urlsplit(admin_url)
    database = parts.path.lstrip("/")
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True

    def run(statement: str, *names: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))

    try:
        run("CREATE SCHEMA {}", cdm)
        for table in tables:
            with connection.cursor() as cursor:
                cursor.execute(create_table_sql("postgresql", cdm, table, "5.3"))
                path = _csv(data, table)
                if path is None:
                    continue
                copy = sql.SQL("COPY {}.{} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
                    sql.Identifier(cdm), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, _header(path)))
                )
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    cursor.copy_expert(copy.as_string(connection), handle)
        run("SELECT pg_stat_force_next_flush()")
        for name in drop_columns:
            table, column = name.split(".")
            run("ALTER TABLE {}.{} DROP COLUMN {}", cdm, table, column)
        run("CREATE SCHEMA {}", results)
        run("CREATE ROLE {} LOGIN", role)
        run("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}", database, role)
        run("GRANT USAGE ON SCHEMA {} TO {}", cdm, role)
        run("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}", cdm, role)
        run("GRANT USAGE, CREATE ON SCHEMA {} TO {}", results, role)
        role_url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))
        yield PlainCdm("postgresql", role_url, admin_url, cdm, results, role)
    finally:
        run("DROP SCHEMA IF EXISTS {} CASCADE", cdm)
        run("DROP SCHEMA IF EXISTS {} CASCADE", results)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            exists = cursor.fetchone() is not None
            if exists:
                # The role's sessions (a worker's) end first, or the role cannot be dropped.
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        if exists:
            run("DROP OWNED BY {}", role)
            run("DROP ROLE {}", role)
        connection.close()


def plain_duckdb_cdm(path: Path, data: Path, *, tables: Iterable[str] = PLAIN_TABLES) -> PlainCdm:
    """A plain CDM (schema ``cdm``) in a new DuckDB file at ``path``, filled with DuckDB's own CSV reader."""
    duck = duckdb.connect(str(path))
    try:
        duck.execute("CREATE SCHEMA cdm")
        for table in tables:
            duck.execute(create_table_sql("duckdb", "cdm", table, "5.3"))
            csv = _csv(data, table)
            if csv is not None:
                columns = ", ".join(f'"{c}"' for c in _header(csv))
                duck.execute(
                    f"INSERT INTO cdm.{table} ({columns}) SELECT {columns} "  # noqa: S608 - names from the CDM spec
                    "FROM read_csv(?, header = true, all_varchar = true)",
                    [str(csv)],
                )
    finally:
        duck.close()
    url = f"duckdb:///{path}"
    return PlainCdm("duckdb", url, url, "cdm", "results")


def etl_change(cdm: Any, sql: str) -> None:
    """A change made by the hospital's ETL in a session of its own (``cdm``: a loaded test CDM on PostgreSQL),
    its statistics reported at once, so that the next fingerprint read sees it."""
    etl = cdm.connect()
    try:
        with etl.transaction():
            etl.execute(sql)
        etl.execute("SELECT pg_stat_force_next_flush()")
    finally:
        etl.close()
