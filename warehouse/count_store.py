"""The count store of a PostgreSQL site: a columnar copy (one DuckDB file) of the CDM tables counts read, kept
beside the site's worker.

Counting on the hospital's PostgreSQL cannot be ten times faster than Circe's SQL there (docs/performance.md, the
floor); the same compiled definition on a columnar copy can. The store is a cache, never a second truth:

- **What is copied.** The tables the caller names (the CDM and vocabulary tables counts read, the site's
  record-key table), whole, under the same schema and table names as at the site, so a statement compiled for the
  source runs on the store unchanged. Event tables are stored in (concept, person, start) order, as Soyang's
  DuckDB loader stores them, and the hierarchy in the order concept sets are resolved by. NUMERIC columns become
  DOUBLE, as in Soyang's DuckDB warehouses (the oracle and the differential suite prove counts identical there).
- **How.** Each table is read with one ``SELECT`` through ADBC's PostgreSQL driver, which streams it as Arrow
  batches over binary COPY, and DuckDB writes the batches: no row passes through Python.
- **Freshness.** The store records the fingerprint of the CDM it copied (``warehouse.fingerprint``: what the
  hospital's ETL changes), read before and after the copy; a copy during which the CDM changed is thrown away.
  A count compares the store's fingerprint with the CDM's current one and uses the store only when they are equal.
- **Swap.** A sync writes a new file beside the current one and points the store's link at it (one rename, atomic
  on one file system): counts that opened the old file finish on it, later ones open the new one. A half-built
  file is never read.
- **One sync at a time** per site and host: an exclusive ``flock`` on ``<key>.lock`` in the store directory.

No Django model is written here: the caller records the outcome (``cohorts.runs.stores``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from warehouse.engines import DuckDBEngine, WarehouseError, quote_ident, url_has_password
from warehouse.models import Source
from warehouse.omop_ddl import EVENT_TABLES

logger = logging.getLogger(__name__)

#: Vocabulary tables in the order concept sets are resolved by (ancestor → descendants, "Maps to" targets): DuckDB
#: then reads the few row groups of a concept set's ancestors instead of the whole hierarchy (millions of rows in a
#: full vocabulary).
VOCABULARY_ORDER = {
    "concept": ("concept_id",),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_relationship": ("concept_id_2", "relationship_id"),
}
#: The store's own record: one row per key of what it holds.
META_TABLE = "soyang_count_store"
#: Bumped when the store's layout changes: stores of another layout are rebuilt, never read.
STORE_FORMAT = "1"


class CountStoreError(WarehouseError):
    """The store cannot be built or read; the message says why (counts then go to the site's database)."""


class CountStoreBusy(CountStoreError):
    """Another sync of the same store is running on this host."""


@dataclass(frozen=True)
class StoreState:
    """What a store file holds, from its own record."""

    path: Path
    fingerprint: str
    synced_at: datetime
    seconds: float
    bytes: int
    rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncReport:
    """What a sync did: the tables and rows it copied, the time, the file's size, the fingerprint copied."""

    fingerprint: str
    seconds: float
    bytes: int
    rows: dict[str, int]
    missing: list[str]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def store_directory() -> Path:
    return Path(settings.SOYANG_COUNT_STORE_DIR)


def store_path(source: Source) -> Path:
    """The store of ``source``: a symbolic link to the file of its latest sync (``<link>_<time>.duckdb``). Each
    sync writes a file of its own name, because DuckDB keeps one database per file path in a process: a file
    renamed over an open one would be read through the old one. (No name equals a schema name: DuckDB names
    the catalog after the file.)"""
    return store_directory() / f"soyang_count_store_{source.key}.duckdb"


def _versions(source: Source) -> list[Path]:
    """The files of the store's syncs (and of a half-built one), never another site's (``a`` and ``a_b``)."""
    own = re.compile(rf"soyang_count_store_{re.escape(source.key)}_\d+\.duckdb(\.building)?(\.wal)?")
    return sorted(p for p in store_directory().glob(f"soyang_count_store_{source.key}_*") if own.fullmatch(p.name))


def store_state(source: Source) -> StoreState | None:
    """The store's record, or None when there is no readable store of the current layout."""
    opened = _opened(source)
    return None if opened is None else opened.state


def store_open(source: Source, *, statement_timeout_seconds: int) -> DuckDBEngine:
    """A read-only engine on the store (raises ``CountStoreError`` when there is none).

    The worker process keeps one read-only connection per store file open between counts, so that a count
    neither reopens the file nor reads again what the last one read (DuckDB's buffer cache); each count works on a
    cursor of it. A sync's new file (renamed over the old one) is opened by the next count; the old one is let
    go."""
    opened = _opened(source)
    if opened is None:
        raise CountStoreError(f"source {source.key} has no count store")
    return DuckDBEngine(
        str(opened.state.path),
        statement_timeout_seconds=statement_timeout_seconds,
        read_only=True,
        shared=opened.connection,
    )


@dataclass
class _Opened:
    #: (device, inode, modification time in ns, size) of the file when opened: a new file (a sync renamed one
    #: over it) differs at least in its time; an inode alone may be reused once the old file is gone.
    identity: tuple[int, int, int, int]
    state: StoreState
    connection: Any


#: Store file path → the process's open connection to it and its record (see ``store_open``).
_OPEN: dict[str, _Opened] = {}
_OPEN_LOCK = threading.Lock()


def _opened(source: Source) -> _Opened | None:
    import duckdb

    link = store_path(source)
    try:
        path = link.resolve(strict=True)
        stat = path.stat()
    except (FileNotFoundError, RuntimeError):
        _OPEN.pop(str(link), None)
        return None
    identity = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _OPEN_LOCK:
        known = _OPEN.get(str(link))
        if known is not None and known.identity == identity:
            return known
        try:
            connection = duckdb.connect(str(path), read_only=True)
            meta = dict(connection.execute(f"SELECT key, value FROM main.{META_TABLE}").fetchall())  # noqa: S608
        except duckdb.Error as exc:
            logger.warning("count store %s cannot be read: %s", path, exc)
            _OPEN.pop(str(link), None)
            return None
        if meta.get("format") != STORE_FORMAT or meta.get("source") != source.key:
            connection.close()
            _OPEN.pop(str(link), None)
            return None
        state = StoreState(
            path=path,
            fingerprint=meta["fingerprint"],
            synced_at=datetime.fromisoformat(meta["synced_at"]),
            seconds=float(meta["seconds"]),
            bytes=stat.st_size,
            rows=json.loads(meta["rows"]),
        )
        _OPEN[str(link)] = _Opened(identity, state, connection)
        return _OPEN[str(link)]


def store_remove(source: Source) -> bool:
    """Delete the store file (the site goes back to counting on its database); True when there was one."""
    with _OPEN_LOCK:
        _OPEN.pop(str(store_path(source)), None)
    link = store_path(source)
    existed = link.is_symlink() or link.exists()
    link.unlink(missing_ok=True)
    for version in _versions(source):
        version.unlink(missing_ok=True)
    return existed


@contextlib.contextmanager
def _sync_lock(source: Source) -> Iterator[None]:
    directory = store_directory()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{source.key}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise CountStoreBusy(f"a sync of the count store of {source.key} is already running") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_sync(
    source: Source,
    *,
    tables: Iterable[tuple[str, str]],
    fingerprint: Callable[[], str],
    progress: Callable[[str, int], None] | None = None,
) -> SyncReport:
    """Copy the tables ``(schema, table)`` of ``source`` (PostgreSQL) into a new store file and swap it in.

    ``tables``: what counts read (``warehouse.fingerprint.counted_tables``) and the site's record-key table.
    ``fingerprint`` reads the CDM's current fingerprint; it is read before and after the copy and the copy is
    thrown away (``CountStoreError``) when they differ. Tables the site does not have are skipped and listed in
    ``SyncReport.missing``. Raises ``CountStoreBusy`` when a sync of the same store runs already.
    """
    if source.engine != "postgresql":
        raise CountStoreError(f"source {source.key} is a {source.engine} warehouse: only PostgreSQL sites keep one")
    wanted = list(dict.fromkeys(tables))
    with _sync_lock(source):
        started = time.monotonic()
        before = fingerprint()
        link = store_path(source)
        final = link.with_name(f"{link.stem}_{time.time_ns()}.duckdb")
        building = final.with_name(final.name + ".building")
        try:
            rows, missing = _copy(source, wanted, building, progress)
            after = fingerprint()
            if after != before:
                raise CountStoreError(
                    f"the CDM of {source.key} changed while it was copied; the copy was discarded (sync again)"
                )
            seconds = time.monotonic() - started
            _write_meta(building, source, before, seconds, rows)
            os.replace(building, final)
            # The link is swapped in one rename; counts that opened the previous file finish on it.
            pointer = link.with_name(link.name + ".new")
            pointer.unlink(missing_ok=True)
            pointer.symlink_to(final.name)
            os.replace(pointer, link)
        except BaseException:
            building.unlink(missing_ok=True)
            building.with_name(building.name + ".wal").unlink(missing_ok=True)
            raise
        # Earlier files (and any a crash left half-built): open ones stay readable until closed (POSIX).
        for version in _versions(source):
            if version != final:
                version.unlink(missing_ok=True)
    report = SyncReport(before, round(time.monotonic() - started, 3), final.stat().st_size, rows, missing)
    logger.info(
        "count store of %s: %s rows of %s tables in %.1f s, %s bytes",
        source.key,
        report.total_rows,
        len(rows),
        report.seconds,
        report.bytes,
    )
    return report


def _pg_uri(source: Source) -> str:
    """The libpq URI ADBC connects with: the source's URL with its password (from the environment) put in."""
    url = source.url
    if url_has_password(url):  # pragma: no cover - refused when the source is registered
        raise CountStoreError("the source URL must not contain a password")
    password = source.password()
    if not password:
        return url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _copy(
    source: Source,
    wanted: list[tuple[str, str]],
    target: Path,
    progress: Callable[[str, int], None] | None,
) -> tuple[dict[str, int], list[str]]:
    """Stream every wanted table from PostgreSQL into the DuckDB file ``target``; returns rows per table and the
    tables the site lacks."""
    import adbc_driver_postgresql.dbapi as adbc
    import duckdb

    store = duckdb.connect(str(target))
    rows: dict[str, int] = {}
    missing: list[str] = []
    try:
        with adbc.connect(_pg_uri(source)) as pg:
            cursor = pg.cursor()
            # One snapshot for every table: the copy is the CDM of one moment.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            present = _pg_columns(cursor, {schema for schema, _ in wanted})
            ordered = {table: (concept, person, start) for table, person, concept, start in EVENT_TABLES}
            ordered.update(VOCABULARY_ORDER)
            for schema, table in wanted:
                columns = present.get((schema, table))
                if not columns:
                    missing.append(f"{schema}.{table}")
                    continue
                select = ", ".join(
                    f"CAST({quote_ident(name)} AS DOUBLE PRECISION) AS {quote_ident(name)}"
                    if kind == "numeric"
                    else quote_ident(name)
                    for name, kind in columns
                )
                cursor.execute(f"SELECT {select} FROM {quote_ident(schema)}.{quote_ident(table)}")  # noqa: S608
                store.register("soyang_batches", cursor.fetch_record_batch())
                name = f"{quote_ident(schema)}.{quote_ident(table)}"
                store.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}").fetchall()
                order = ordered.get(table)
                names = {column for column, _ in columns}
                by = f" ORDER BY {', '.join(quote_ident(c) for c in order)}" if order and set(order) <= names else ""
                store.execute(f"CREATE TABLE {name} AS SELECT * FROM soyang_batches{by}").fetchall()  # noqa: S608
                store.unregister("soyang_batches")
                ((count,),) = store.execute(f"SELECT COUNT(*) FROM {name}").fetchall()  # noqa: S608
                rows[f"{schema}.{table}"] = int(count)
                if progress is not None:
                    progress(f"{schema}.{table}", int(count))
        store.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise CountStoreError(f"writing the count store of {source.key} failed: {exc}") from exc
    except Exception as exc:
        if isinstance(exc, CountStoreError):
            raise
        raise CountStoreError(f"reading the CDM of {source.key} for its count store failed: {exc}") from exc
    finally:
        store.close()
    return rows, missing


def _pg_columns(cursor: Any, schemas: set[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(schema, table) → [(column, 'numeric' | other)] in column order, for the tables of ``schemas``."""
    # Schema names are validated identifiers (``SCHEMA_NAME_RE``): quoted as literals here.
    listed = ", ".join("'" + schema.replace("'", "''") + "'" for schema in sorted(schemas))
    cursor.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "  # noqa: S608
        f"WHERE table_schema IN ({listed}) ORDER BY table_schema, table_name, ordinal_position"
    )
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in cursor.fetchall():
        out.setdefault((schema, table), []).append((column, data_type))
    return out


def _write_meta(path: Path, source: Source, fingerprint: str, seconds: float, rows: dict[str, int]) -> None:
    import duckdb

    store = duckdb.connect(str(path))
    try:
        store.execute(f"CREATE TABLE main.{META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        meta = {
            "format": STORE_FORMAT,
            "source": source.key,
            "fingerprint": fingerprint,
            "synced_at": datetime.now(UTC).isoformat(),
            "seconds": f"{seconds:.3f}",
            "rows": json.dumps(rows, sort_keys=True),
        }
        store.executemany(f"INSERT INTO main.{META_TABLE} VALUES (?, ?)", list(meta.items()))  # noqa: S608
        store.execute("CHECKPOINT")
    finally:
        store.close()
