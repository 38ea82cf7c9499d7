"""One small engine interface over the two warehouse databases Soyang supports: PostgreSQL and DuckDB.

Plain Python on purpose (no Django import): the cohort compiler, the Celery workers, the loader and the test
harnesses all run SQL through this module, in and outside the portal process.

The contract every caller relies on:

- SQL uses pyformat named placeholders ``%(name)s`` on both engines; a literal percent sign is written ``%%``
  (also when no parameters are given, so one SQL text means the same thing everywhere). The DuckDB engine
  rewrites them to its own ``$name`` style.
- Outside ``transaction()`` every statement commits on its own.
- Errors come out as ``QueryCancelled`` (``cancel()`` was called), ``QueryTimeout`` (the statement timeout
  fired), ``TransientEngineError`` (connection lost or refused, lock or serialization conflicts: worth a
  retry) or ``EngineError`` (anything else), all ``WarehouseError``; the driver's exception is ``__cause__``.
"""

from __future__ import annotations

import abc
import gzip
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg2
import psycopg2.errors
import psycopg2.extensions

#: The directory holding manage.py: relative DuckDB URLs (three slashes) are resolved against it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PLACEHOLDER_RE = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%")

ENGINE_KINDS = ("postgresql", "duckdb", "spark")


class WarehouseError(Exception):
    """Base of every error raised by the warehouse layer."""


class EngineError(WarehouseError):
    """A statement failed in the database (syntax, constraint, conversion…); retrying will not help."""


class TransientEngineError(EngineError):
    """The database could not be reached or the statement lost a conflict; the same work may succeed later."""


class QueryCancelled(EngineError):
    """The statement was stopped by ``Engine.cancel()``."""


class QueryTimeout(EngineError):
    """The statement ran longer than the engine's statement timeout."""


def quote_ident(name: str) -> str:
    """``name`` double-quoted for SQL, after checking it is a plain lower-case identifier.

    Only validated names reach SQL text, so a schema or table name can never smuggle SQL in; values always
    travel as bound parameters.
    """
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r} (1-63 lower-case letters, digits or _)")
    return f'"{name}"'


def create_schema_sql(kind: str, schema: str) -> str:
    """A statement creating ``schema`` when it is missing, and doing nothing when it exists.

    PostgreSQL checks the right to create schemas in the database before it looks at ``IF NOT EXISTS``, so
    ``CREATE SCHEMA IF NOT EXISTS`` fails for a role that may write an existing results schema but not create
    schemas (a hospital's usual grant to Soyang): there, the schema is created only when it is absent.
    """
    name = quote_ident(schema)
    if kind == "postgresql":
        # The literal is a validated identifier (quote_ident): no quote can occur in it.
        return f"DO $$BEGIN IF to_regnamespace('{schema}') IS NULL THEN CREATE SCHEMA {name}; END IF; END$$"
    return f"CREATE SCHEMA IF NOT EXISTS {name}"


def _sniff_delimiter(path: Path) -> str:
    """Tab for TAB-separated exports (Athena vocabulary files are named .csv), else comma."""
    with _open_text(path) as handle:
        first = handle.readline()
    return "\t" if "\t" in first and "," not in first.replace('","', "") else ","


def _open_text(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


class Engine(abc.ABC):
    """A connection to one warehouse database. Not shared between threads, except ``cancel()``."""

    kind: str

    def __init__(self, *, statement_timeout_seconds: int, read_only: bool) -> None:
        self.statement_timeout_seconds = statement_timeout_seconds
        self.read_only = read_only
        self._depth = 0
        self._closed = False

    # -- statements -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run one query and return every row."""

    def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple | None:
        """Run one query and return its first row, or None."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    def execute_script(self, sql: str) -> None:
        """Run several ``;``-separated statements without parameters (DDL); the text is passed as is."""

    @abc.abstractmethod
    def copy_from_csv(
        self,
        table: str,
        path: Path,
        columns: Sequence[str],
        *,
        header: bool = True,
        delimiter: str | None = None,
        empty_as_text: Sequence[str] = (),
    ) -> int:
        """Bulk-load a CSV file (``.gz`` read transparently) into ``table``; return the rows loaded.

        ``table`` is SQL text (e.g. ``"cdm"."person"``, built with ``quote_ident``), ``columns`` the file's
        columns in order. An empty field is NULL, except in ``empty_as_text`` columns where it is an empty
        string. ``delimiter`` None sniffs tab or comma from the first line.
        """

    # -- transactions -----------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Engine]:
        """Commit on success, roll back on exception. Nested use joins the outer transaction (a savepoint
        on PostgreSQL, so an inner failure that the caller catches leaves the outer one usable)."""
        if self._depth == 0:
            self._begin()
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            self._commit()
            return
        self._depth += 1
        savepoint = f"soyang_sp_{self._depth}"
        self._savepoint(savepoint)
        try:
            yield self
        except BaseException:
            self._rollback_to(savepoint)
            raise
        finally:
            self._depth -= 1
        self._release(savepoint)

    @property
    def in_transaction(self) -> bool:
        """True inside ``transaction()``."""
        return self._depth > 0

    @abc.abstractmethod
    def _begin(self) -> None: ...

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    def _savepoint(self, name: str) -> None:  # noqa: B027 - engines without savepoints just join
        """Engines without savepoints (DuckDB) join the outer transaction."""

    def _rollback_to(self, name: str) -> None:  # noqa: B027
        """See ``_savepoint``."""

    def _release(self, name: str) -> None:  # noqa: B027
        """See ``_savepoint``."""

    # -- control ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the running statement; safe to call from another thread (and when nothing runs)."""

    @abc.abstractmethod
    def set_statement_timeout(self, seconds: int) -> None:
        """Limit every following statement to ``seconds`` (0: no limit)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TimerInterruptedEngine(Engine):
    """An engine whose statement timeout is a timer that interrupts the running statement (DuckDB, Spark): the
    server side has no timeout of its own that the engine could set. ``cancel()`` interrupts the same way; an
    interruption is reported as a timeout only when the timer, not a cancel, caused it."""

    def __init__(self, *, statement_timeout_seconds: int, read_only: bool) -> None:
        super().__init__(statement_timeout_seconds=statement_timeout_seconds, read_only=read_only)
        self._lock = threading.Lock()
        self._cancelled = False
        self._timed_out = False

    @abc.abstractmethod
    def _interrupt(self) -> None:
        """Interrupt the running statement (nothing when none runs)."""

    @contextmanager
    def _timer(self) -> Iterator[None]:
        """One statement under the timeout timer."""
        with self._lock:
            self._cancelled = False
            self._timed_out = False
        timer = None
        if self.statement_timeout_seconds > 0:
            timer = threading.Timer(self.statement_timeout_seconds, self._on_timeout)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()

    def _on_timeout(self) -> None:
        with self._lock:
            self._timed_out = True
        self._interrupt()

    def _interrupted(self) -> EngineError:
        """What an interrupted statement was: timed out or cancelled."""
        with self._lock:
            timed_out, cancelled = self._timed_out, self._cancelled
        if timed_out and not cancelled:
            return QueryTimeout(f"the statement ran longer than {self.statement_timeout_seconds} s")
        return QueryCancelled("the statement was cancelled")

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self._interrupt()

    def set_statement_timeout(self, seconds: int) -> None:
        self.statement_timeout_seconds = int(seconds)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------------

# SQLSTATEs worth a retry: connection exceptions (08…), serialization failure, deadlock, lock not available,
# too many connections, admin/crash shutdown, cannot connect now.
_PG_TRANSIENT_STATES = {"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"}


class PostgresEngine(Engine):
    """psycopg2, in autocommit mode; ``transaction()`` issues BEGIN/COMMIT itself."""

    kind = "postgresql"

    def __init__(self, dsn: str, *, password: str | None, statement_timeout_seconds: int, read_only: bool) -> None:
        super().__init__(statement_timeout_seconds=statement_timeout_seconds, read_only=read_only)
        self._cancel_requested = threading.Event()
        kwargs: dict[str, Any] = {"application_name": "soyang", "connect_timeout": 10}
        if password is not None:
            kwargs["password"] = password
        try:
            self._conn = psycopg2.connect(dsn, **kwargs)
        except psycopg2.Error as exc:
            raise TransientEngineError(f"cannot connect to PostgreSQL: {_pg_message(exc)}") from exc
        self._conn.autocommit = True
        self.set_statement_timeout(statement_timeout_seconds)
        if read_only:
            self.execute("SET default_transaction_read_only = on")

    def _run(self, sql: str, params: Mapping[str, Any] | None, *, fetch: bool) -> list[tuple] | None:
        self._cancel_requested.clear()
        try:
            with self._conn.cursor() as cursor:
                # Always pass a mapping: psycopg2 then applies pyformat, so "%%" is a literal percent sign
                # with and without parameters, as on DuckDB.
                cursor.execute(sql, dict(params or {}))
                return cursor.fetchall() if fetch else None
        except psycopg2.Error as exc:
            raise self._translate(exc) from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, params, fetch=False)

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        rows = self._run(sql, params, fetch=True)
        return rows if rows is not None else []

    def execute_script(self, sql: str) -> None:
        self._cancel_requested.clear()
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(sql)  # no parameters: the script is sent as is (libpq runs every statement)
        except psycopg2.Error as exc:
            raise self._translate(exc) from exc

    def copy_from_csv(
        self,
        table: str,
        path: Path,
        columns: Sequence[str],
        *,
        header: bool = True,
        delimiter: str | None = None,
        empty_as_text: Sequence[str] = (),
    ) -> int:
        path = Path(path)
        delimiter = delimiter or _sniff_delimiter(path)
        column_list = ", ".join(quote_ident(c) for c in columns)
        options = ["FORMAT csv", f"HEADER {'true' if header else 'false'}"]
        if delimiter == "\t":
            # Athena TAB files are not quoted and may hold stray '"': pick a quote byte that never occurs.
            options += ["DELIMITER E'\\t'", "QUOTE E'\\b'"]
        else:
            options.append("DELIMITER ','")
        text_columns = [c for c in columns if c in set(empty_as_text)]
        null_columns = [c for c in columns if c not in set(empty_as_text)]
        # FORCE_NULL: a quoted "" is NULL too (as on DuckDB); FORCE_NOT_NULL: empty is '' in those columns.
        if null_columns:
            options.append(f"FORCE_NULL ({', '.join(quote_ident(c) for c in null_columns)})")
        if text_columns:
            options.append(f"FORCE_NOT_NULL ({', '.join(quote_ident(c) for c in text_columns)})")
        sql = f"COPY {table} ({column_list}) FROM STDIN WITH ({', '.join(options)})"
        self._cancel_requested.clear()
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with opener(path, "rb") as handle, self._conn.cursor() as cursor:
                cursor.copy_expert(sql, handle, size=1 << 20)
                return cursor.rowcount
        except psycopg2.Error as exc:
            raise self._translate(exc) from exc

    def _begin(self) -> None:
        self.execute("BEGIN")

    def _commit(self) -> None:
        self.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self.execute("ROLLBACK")
        except WarehouseError:
            # The connection may be gone; the server rolls back an open transaction on disconnect anyway.
            pass

    def _savepoint(self, name: str) -> None:
        self.execute(f"SAVEPOINT {quote_ident(name)}")

    def _rollback_to(self, name: str) -> None:
        self.execute(f"ROLLBACK TO SAVEPOINT {quote_ident(name)}")

    def _release(self, name: str) -> None:
        self.execute(f"RELEASE SAVEPOINT {quote_ident(name)}")

    def cancel(self) -> None:
        # PQcancel through psycopg2 opens its own short connection to the server: thread-safe by design.
        self._cancel_requested.set()
        try:
            self._conn.cancel()
        except psycopg2.Error:
            pass  # nothing running, or the connection is already closed

    def set_statement_timeout(self, seconds: int) -> None:
        self.statement_timeout_seconds = int(seconds)
        self.execute("SELECT set_config('statement_timeout', %(ms)s, false)", {"ms": str(int(seconds) * 1000)})

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def _translate(self, exc: psycopg2.Error) -> WarehouseError:
        message = _pg_message(exc)
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            if "statement timeout" in message and not self._cancel_requested.is_set():
                return QueryTimeout(f"the statement ran longer than {self.statement_timeout_seconds} s: {message}")
            return QueryCancelled(f"the statement was cancelled: {message}")
        if isinstance(exc, psycopg2.OperationalError) and exc.pgcode is None:
            return TransientEngineError(f"PostgreSQL connection problem: {message}")
        if exc.pgcode and (exc.pgcode.startswith("08") or exc.pgcode in _PG_TRANSIENT_STATES):
            return TransientEngineError(message)
        if isinstance(exc, psycopg2.InterfaceError):
            return TransientEngineError(f"PostgreSQL connection problem: {message}")
        return EngineError(message)


def _pg_message(exc: psycopg2.Error) -> str:
    return (str(exc).strip() or type(exc).__name__).replace("\n", " ")


# ---------------------------------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------------------------------


def translate_placeholders(sql: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """``%(name)s`` → ``$name`` and ``%%`` → ``%``; returns the SQL and only the parameters it uses
    (DuckDB refuses extra ones)."""
    used: dict[str, Any] = {}
    given = params or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "%"
        if name not in given:
            raise EngineError(f"no value for the SQL parameter %({name})s")
        used[name] = given[name]
        return f"${name}"

    translated = _PLACEHOLDER_RE.sub(replace, sql)
    return translated, (used or None)


class DuckDBEngine(TimerInterruptedEngine):
    """An embedded DuckDB database file; the statement timeout is a timer that interrupts the connection."""

    kind = "duckdb"

    def __init__(self, path: str, *, statement_timeout_seconds: int, read_only: bool, shared: Any = None) -> None:
        """``shared``: a DuckDB connection of this process to ``path``, kept open by its owner; this engine then
        works on a cursor of it (its own connection to the same database, sharing the buffer cache) and its
        ``close`` closes only the cursor."""
        super().__init__(statement_timeout_seconds=statement_timeout_seconds, read_only=read_only)
        self.path = path
        if shared is not None:
            self._conn = shared.cursor()
            return
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise _duck_connect_error(path, exc) from exc
        except OSError as exc:
            raise TransientEngineError(f"cannot open DuckDB file {path}: {exc}") from exc

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Run one statement under the timeout timer and map DuckDB's exceptions."""
        try:
            with self._timer():
                yield
        except duckdb.Error as exc:
            raise self._translate(exc) from exc

    def _interrupt(self) -> None:
        try:
            self._conn.interrupt()
        except duckdb.Error:
            pass

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        translated, bound = translate_placeholders(sql, params)
        with self._guard():
            self._conn.execute(translated, bound)

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        translated, bound = translate_placeholders(sql, params)
        with self._guard():
            return self._conn.execute(translated, bound).fetchall()

    def execute_script(self, sql: str) -> None:
        with self._guard():
            self._conn.execute(sql)  # DuckDB runs every ;-separated statement of a parameterless text

    def copy_from_csv(
        self,
        table: str,
        path: Path,
        columns: Sequence[str],
        *,
        header: bool = True,
        delimiter: str | None = None,
        empty_as_text: Sequence[str] = (),
    ) -> int:
        path = Path(path)
        delimiter = delimiter or _sniff_delimiter(path)
        types = {name: type_ for name, type_, *_ in self.fetchall(f"DESCRIBE {table}")}
        missing = [c for c in columns if c not in types]
        if missing:
            raise EngineError(f"{table} has no column(s) {', '.join(missing)}")
        # Strict, non-sniffing reader: the file must have exactly these columns, typed as the table's, so a
        # malformed row fails with its line number instead of being guessed around.
        column_spec = ", ".join(f"'{c}': '{types[c]}'" for c in columns)
        options = [
            f"header = {'true' if header else 'false'}",
            f"columns = {{{column_spec}}}",
            "auto_detect = false",
            "strict_mode = true",
            "nullstr = ''",
        ]
        if delimiter == "\t":
            options += ["delim = '\t'", "quote = ''", "escape = ''"]
            if _first_date_is_compact(path, columns, types):
                options.append("dateformat = '%Y%m%d'")
        else:
            options += ["delim = ','", "quote = '\"'", "escape = '\"'"]
        text_columns = [c for c in columns if c in set(empty_as_text)]
        if text_columns:
            options.append("force_not_null = [" + ", ".join(f"'{c}'" for c in text_columns) + "]")
        column_list = ", ".join(quote_ident(c) for c in columns)
        sql = f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM read_csv($path, {', '.join(options)})"
        with self._guard():
            row = self._conn.execute(sql, {"path": str(path)}).fetchone()
        return int(row[0]) if row else 0

    def _begin(self) -> None:
        with self._guard():
            self._conn.begin()

    def _commit(self) -> None:
        with self._guard():
            self._conn.commit()

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except duckdb.Error:
            pass  # no transaction left to roll back (DuckDB may have aborted it already)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def _translate(self, exc: duckdb.Error) -> WarehouseError:
        message = str(exc).strip()
        if isinstance(exc, duckdb.InterruptException) or "INTERRUPT" in message.upper():
            return self._interrupted()
        if isinstance(exc, duckdb.TransactionException) and "conflict" in message.lower():
            return TransientEngineError(message)
        if isinstance(exc, duckdb.ConnectionException):
            return TransientEngineError(message)
        return EngineError(message)


def _first_date_is_compact(path: Path, columns: Sequence[str], types: Mapping[str, str]) -> bool:
    """Athena writes dates as YYYYMMDD: look at the first data row's first DATE column."""
    date_positions = [i for i, c in enumerate(columns) if types[c] == "DATE"]
    if not date_positions:
        return False
    with _open_text(path) as handle:
        handle.readline()
        fields = handle.readline().rstrip("\r\n").split("\t")
    value = fields[date_positions[0]] if len(fields) > date_positions[0] else ""
    return bool(re.fullmatch(r"\d{8}", value))


def _duck_connect_error(path: str, exc: duckdb.Error) -> WarehouseError:
    message = str(exc).strip()
    if "lock" in message.lower():
        return TransientEngineError(f"DuckDB file {path} is locked by another process: {message}")
    if isinstance(exc, duckdb.IOException):
        return TransientEngineError(f"cannot open DuckDB file {path}: {message}")
    return EngineError(f"cannot open DuckDB file {path}: {message}")


# ---------------------------------------------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------------------------------------------


def duckdb_path(url: str) -> str:
    """The file of a ``duckdb:`` URL: four slashes absolute, three slashes relative to the project root."""
    if not url.startswith("duckdb:///"):
        raise ValueError(f"a DuckDB URL is duckdb:////absolute/path.duckdb or duckdb:///relative/path: {url!r}")
    rest = url[len("duckdb:///") :]
    if rest in ("", ":memory:"):
        return ":memory:"
    if rest.startswith("/"):
        return rest
    return str(PROJECT_ROOT / rest)


def url_has_password(url: str) -> bool:
    """True when a ``postgresql://`` URL carries a password (passwords come from the environment only)."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def connect(
    kind: str,
    url: str,
    *,
    password: str | None = None,
    statement_timeout_seconds: int = 600,
    read_only: bool = False,
) -> Engine:
    """Open an engine of ``kind`` ("postgresql", "duckdb" or "spark") on ``url``; the password (a Spark cluster's
    token) travels separately."""
    if kind == "postgresql":
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"a PostgreSQL URL is postgresql://USER@HOST:PORT/DB: {url!r}")
        if url_has_password(url):
            raise ValueError("the PostgreSQL URL must not contain a password: pass it separately")
        return PostgresEngine(
            url, password=password, statement_timeout_seconds=statement_timeout_seconds, read_only=read_only
        )
    if kind == "duckdb":
        return DuckDBEngine(duckdb_path(url), statement_timeout_seconds=statement_timeout_seconds, read_only=read_only)
    if kind == "spark":
        from warehouse.spark_engine import SparkEngine, spark_token

        return SparkEngine(
            url,
            token=password if password is not None else spark_token(),
            statement_timeout_seconds=statement_timeout_seconds,
            read_only=read_only,
        )
    raise ValueError(f"unknown engine kind {kind!r}: expected one of {', '.join(ENGINE_KINDS)}")
