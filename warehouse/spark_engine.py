"""The third warehouse engine: Apache Spark SQL, reached over Spark Connect (``sc://host:port``).

A Soyang worker talks to a Spark cluster the way any Python client does today: through Spark Connect, which
open-source Spark (3.4 and later) and Databricks both serve. The worker needs no JVM; the cluster holds the CDM
in a catalog/schema (``cdm_schema``, ``results_schema``), as Parquet or Delta tables.

The engine keeps the contract of ``warehouse.engines`` with these differences, which callers are written for:

- SQL text is the same: ``%(name)s`` placeholders become Spark's named parameters ``:name`` (values travel
  beside the SQL, never inside it) and ``%%`` a percent sign. Double quotes are identifiers, as on the other
  engines (``spark.sql.ansi.doubleQuotedIdentifiers``, set on every session), so quoted schema and table names
  mean the same thing everywhere.
- Spark has no transactions. ``transaction()`` groups statements without making them atomic; each statement is
  atomic on its own (a partition overwrite replaces one cohort's rows in one write), which is what the
  generation relies on (``cohorts.compiler.dialects.SparkDialect``).
- Each engine is a Spark Connect session of its own: temporary views (the compiler's temp tables) are private to
  it, like temp tables to a PostgreSQL connection. ``close`` releases the session on the server.
- ``cancel`` and the statement timeout interrupt every operation of the session on the server.
- The token of a cluster that requires one (Databricks: a personal access token) comes from the environment
  (``SOYANG_SPARK_TOKEN``, or the password a Source names), never from the URL stored in the portal.

pyspark is imported only when a Spark engine is opened: the portal and the other engines never load it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warehouse.engines import (
    EngineError,
    TimerInterruptedEngine,
    TransientEngineError,
    WarehouseError,
    _first_date_is_compact,
    _sniff_delimiter,
    quote_ident,
)

_PLACEHOLDER_RE = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%")
_CACHE_AS_RE = re.compile(r"^\s*CACHE TABLE (?P<name>[A-Za-z_][A-Za-z0-9_]*) AS\s+(?P<query>.*)$", re.DOTALL)
_DROP_VIEW_RE = re.compile(r"^\s*DROP VIEW IF EXISTS (?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")
_URL_RE = re.compile(r"^sc://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(:(?P<port>\d{1,5}))?/?$")

#: Session settings of every Spark engine: double-quoted names are identifiers (as in PostgreSQL and DuckDB) and
#: arithmetic follows the SQL standard (an overflow is an error, never a wrapped number).
SESSION_SETTINGS = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.session.timeZone": "UTC",
}

#: Tuning of every Spark engine's session, set where the cluster allows it (a cluster may forbid a setting; the
#: engine then works as the cluster is set). Measured on the synthetic warehouse at 1,000,000 persons, local[2]
#: (docs/performance.md): pl_22168 generates in 9 s without adaptive execution and 79 s with it, because
#: adaptive execution plans every cached stage of a generation again inside the next one; and without a bound
#: on the text of a plan, the server's record of each statement kept the whole text of the cached plans
#: beneath it (3.6 GB of the driver's heap after that one generation, and "Java heap space" after fourteen).
TUNING_SETTINGS = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.maxPlanStringLength": "20000",
}

logger = logging.getLogger(__name__)

#: The session class of every Spark engine (made on first use, so that pyspark is imported only then).
_OwnedSession: Any = None

#: Retries of a call that found the server unreachable (200 ms, then 4x longer each: about 4 s in all).
CONNECT_RETRIES = 3

#: Rows per batch when a CSV file is sent from this machine to a remote cluster (Arrow over gRPC).
UPLOAD_BATCH_ROWS = 200_000

#: The name of the temporary view a CSV file is read through before its rows are cast into the table.
_CSV_VIEW = "soyang_csv_upload"

#: Hosts whose Spark Connect server shares this machine's file system (a server started next to the worker): it
#: reads CSV files itself, in parallel, instead of receiving them over the connection.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}

# The client logs every failed statement, with the JVM stack, on top of raising it: the error raised is enough.
logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)


def spark_url_parts(url: str) -> tuple[str, int]:
    """``(host, port)`` of a Spark Connect URL ``sc://host[:port]`` (port 15002 by default).

    Options after the address (``sc://host:port/;token=...``) are refused: a token is a secret and comes from
    the environment; the other options are set by Soyang itself.
    """
    match = _URL_RE.match(url or "")
    if match is None:
        raise ValueError(
            f"a Spark Connect URL is sc://HOST:PORT (no token or options in it; the token comes from the "
            f"environment): {url!r}"
        )
    port = int(match.group("port") or 15002)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port in Spark Connect URL {url!r}")
    return match.group("host"), port


def translate_placeholders(sql: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """``%(name)s`` → ``:name`` and ``%%`` → ``%``; returns the SQL and only the parameters it uses."""
    used: dict[str, Any] = {}
    given = params or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "%"
        if name not in given:
            raise EngineError(f"no value for the SQL parameter %({name})s")
        value = given[name]
        used[name] = list(value) if isinstance(value, tuple) else value
        return f":{name}"

    return _PLACEHOLDER_RE.sub(replace, sql), used


def split_statements(script: str) -> list[str]:
    """The ``;``-separated statements of ``script``, ignoring semicolons inside quotes and ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(script):
        char = script[i]
        if quote is not None:
            current.append(char)
            if char == quote:
                quote = None
        elif char in ("'", '"', "`"):
            quote = char
            current.append(char)
        elif char == "-" and script.startswith("--", i):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


class SparkEngine(TimerInterruptedEngine):
    """One Spark Connect session on a cluster (or a local Spark Connect server)."""

    kind = "spark"

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        statement_timeout_seconds: int,
        read_only: bool,
        server_reads_files: bool | None = None,
    ) -> None:
        """``server_reads_files``: whether the server can read this machine's files (CSV loads then run on the
        server); None decides by the host (a server on this machine can)."""
        super().__init__(statement_timeout_seconds=statement_timeout_seconds, read_only=read_only)
        host, port = spark_url_parts(url)
        self.url = url
        self.server_reads_files = host in _LOCAL_HOSTS if server_reads_files is None else server_reads_files
        #: Views this engine cached (``CACHE TABLE name AS ...``) and has not dropped yet.
        self._cached: set[str] = set()
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - pyspark is in requirements.txt
            raise EngineError("the Spark engine needs pyspark (requirements.txt)") from exc
        global _OwnedSession
        if _OwnedSession is None:
            _OwnedSession = _owned_session_class()
        address = f"sc://{host}:{port}/;user_id=soyang"
        if token:
            address += f";token={token};use_ssl=true"
        try:
            self._spark = SparkSession.builder.remote(address).create()
            # pyspark's SparkSession.__del__ closes its client, which shuts down a thread pool shared by every
            # session of the process; run by the garbage collector inside that pool's own submit (another session
            # reading a result), it deadlocks the process. This engine closes its session itself (``close``).
            self._spark.__class__ = _OwnedSession
            # The client's default retries a lost connection for ten minutes: a worker would hang on a cluster that
            # is down. A few seconds here; the worker's own retry of a TransientEngineError does the rest.
            from pyspark.sql.connect.client.retries import DefaultPolicy

            self._spark.client.set_retry_policies(
                [DefaultPolicy(max_retries=CONNECT_RETRIES, initial_backoff=200, max_backoff=5000)]
            )
            for key, value in SESSION_SETTINGS.items():
                self._spark.conf.set(key, value)
        except Exception as exc:
            spark = getattr(self, "_spark", None)
            if spark is not None:
                _release(spark)
            reason = "no answer" if "RETRIES_EXCEEDED" in str(exc) else _message(exc)
            raise TransientEngineError(f"cannot connect to Spark at {host}:{port}: {reason}") from exc
        for key, value in TUNING_SETTINGS.items():
            try:
                self._spark.conf.set(key, value)
            except Exception as exc:  # noqa: BLE001 - the cluster's own setting stays
                logger.warning("Spark at %s:%s keeps its %s: %s", host, port, key, _message(exc))

    @property
    def session(self) -> Any:
        """The ``pyspark.sql.SparkSession`` (Spark Connect) of this engine, for DataFrame work (bulk writes)."""
        return self._spark

    # -- statements -------------------------------------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Run one statement under the timeout timer and map Spark's exceptions."""
        if self._closed:
            raise EngineError("the Spark engine is closed")
        # pyspark asks "the active session" of the thread for settings while it builds a statement (the type of a
        # datetime parameter): it must be this engine's, never another engine's of the same worker thread.
        type(self._spark)._active_session.session = self._spark  # a thread-local of pyspark's SparkSession class
        try:
            with self._timer():
                yield
        except WarehouseError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def _interrupt(self) -> None:
        try:
            self._spark.interruptAll()
        except Exception:  # noqa: BLE001, S110 - nothing running, or the session is gone
            pass

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        translated, bound = translate_placeholders(sql, params)
        cached = _CACHE_AS_RE.match(translated)
        if cached is not None:
            # Spark refuses parameter markers inside CACHE TABLE … AS: the query (values still bound) becomes a
            # temporary view of this session, which CACHE TABLE then computes and keeps, the same as the one form.
            # A view of that name left by an earlier run on this session is replaced (and its cache dropped).
            self._cached.add(cached.group("name"))
            with self._guard():
                self._spark.sql(cached.group("query"), args=bound or None).createOrReplaceTempView(cached.group("name"))
                self._spark.sql(f"CACHE TABLE {cached.group('name')}")
            return
        dropped = _DROP_VIEW_RE.match(translated)
        if dropped is not None:
            # A view cached with CACHE TABLE keeps its cached rows after DROP VIEW when it was made from a frame:
            # they would stay in the server's memory, and stand in for the table they were read from (a table's
            # ``inputFiles`` would then list none).
            with self._guard():
                self._spark.sql(f"UNCACHE TABLE IF EXISTS {dropped.group('name')}")
            self._cached.discard(dropped.group("name"))
        with self._guard():
            frame = self._spark.sql(translated, args=bound or None)
            # Commands (DDL, INSERT, CACHE TABLE) run when sql() returns; a query runs only when read.
            if _is_query(translated):
                frame.collect()

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        translated, bound = translate_placeholders(sql, params)
        with self._guard():
            return [tuple(row) for row in self._spark.sql(translated, args=bound or None).collect()]

    def execute_script(self, sql: str) -> None:
        for statement in split_statements(sql):
            self.execute(statement.replace("%", "%%"))

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
        """Bulk-load a CSV file into ``table``: read as text, then cast into the table's types by Spark (an
        invalid value is an error naming the column, never a silent NULL: ANSI casts).

        A server on this machine reads the file itself; a remote cluster receives its rows in Arrow batches."""
        path = Path(path)
        delimiter = delimiter or _sniff_delimiter(path)
        types = {name: type_ for name, type_ in self._column_types(table)}
        missing = [c for c in columns if c not in types]
        if missing:
            raise EngineError(f"{table} has no column(s) {', '.join(missing)}")
        # The check shared with DuckDB reads upper-case type names (DATE); Spark's are lower-case.
        compact_dates = delimiter == "\t" and _first_date_is_compact(
            path, columns, {c: t.upper() for c, t in types.items()}
        )
        text_columns = set(empty_as_text)

        def cast(column: str) -> str:
            source = quote_ident(column)
            if column in text_columns:
                return f"COALESCE({source}, '')"
            if types[column] == "date" and compact_dates:
                return f"to_date({source}, 'yyyyMMdd')"
            if types[column] in ("string",) or types[column].startswith(("varchar", "char")):
                return source
            return f"CAST({source} AS {types[column].upper()})"

        select = ", ".join(f"{cast(c)} AS {quote_ident(c)}" for c in columns)
        insert = f"INSERT INTO {table} ({', '.join(quote_ident(c) for c in columns)}) SELECT {select} FROM {_CSV_VIEW}"
        if self.server_reads_files:
            return self._copy_on_server(path, columns, header, delimiter, insert)
        return self._copy_from_client(path, columns, header, delimiter, insert)

    def _copy_on_server(self, path: Path, columns: Sequence[str], header: bool, delimiter: str, insert: str) -> int:
        reader = (
            self._spark.read.format("csv")
            .option("header", "true" if header else "false")
            .option("sep", delimiter)
            .option("mode", "FAILFAST")
            .option("enforceSchema", "true")
            .schema(", ".join(f"`{c}` STRING" for c in columns))
        )
        if delimiter == "\t":
            reader = reader.option("quote", "\u0000")  # Athena TAB files are not quoted and may hold stray '"'
        else:
            reader = reader.option("quote", '"').option("escape", '"')
        with self._guard():
            frame = reader.load(str(path.resolve()))
            frame.createOrReplaceTempView(_CSV_VIEW)
            try:
                self._spark.sql(insert)
                return int(self._spark.sql(f"SELECT COUNT(*) FROM {_CSV_VIEW}").collect()[0][0])
            finally:
                self._spark.sql(f"DROP VIEW IF EXISTS {_CSV_VIEW}")

    def _copy_from_client(self, path: Path, columns: Sequence[str], header: bool, delimiter: str, insert: str) -> int:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=False if delimiter == "\t" else '"')
        read = pacsv.ReadOptions(
            column_names=list(columns), skip_rows=1 if header else 0, block_size=8 << 20, use_threads=True
        )
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        total = 0
        with self._guard():
            try:
                stream = pacsv.open_csv(str(path), read_options=read, parse_options=parse, convert_options=convert)
            except pa.ArrowInvalid as exc:
                raise EngineError(f"{path.name}: {exc}") from exc
            pending: list[Any] = []
            pending_rows = 0

            def flush() -> None:
                nonlocal pending, pending_rows, total
                if not pending:
                    return
                batch = pa.Table.from_batches(pending)
                self._spark.createDataFrame(batch).createOrReplaceTempView(_CSV_VIEW)
                try:
                    self._spark.sql(insert)
                finally:
                    self._spark.sql(f"DROP VIEW IF EXISTS {_CSV_VIEW}")
                total += batch.num_rows
                pending, pending_rows = [], 0

            try:
                for batch in stream:
                    pending.append(batch)
                    pending_rows += batch.num_rows
                    if pending_rows >= UPLOAD_BATCH_ROWS:
                        flush()
            except pa.ArrowInvalid as exc:
                raise EngineError(f"{path.name}: {exc}") from exc
            flush()
        return total

    def _column_types(self, table: str) -> list[tuple[str, str]]:
        """``(column, spark type)`` of ``table`` in order, types lower-case (``bigint``, ``date``…)."""
        with self._guard():
            fields = self._spark.table(_unquoted(table)).schema.fields
        return [(field.name, field.dataType.simpleString().lower()) for field in fields]

    # -- transactions -----------------------------------------------------------------------------------------
    def _begin(self) -> None:
        """Spark has no transactions: statements of a ``transaction()`` block run one by one."""

    def _commit(self) -> None:
        """See ``_begin``."""

    def _rollback(self) -> None:
        """See ``_begin``."""

    # -- control ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._uncache_left_over()
            _release(self._spark)

    def _uncache_left_over(self) -> None:
        """Uncache the views this engine cached and never dropped (a generation that failed, timed out or was
        cancelled before its cleanup). The cluster's cache is keyed by plan and shared by every session: releasing
        the session leaves the rows cached, in the cluster's memory, until it restarts."""
        for name in sorted(self._cached):
            try:
                self._spark.sql(f"UNCACHE TABLE IF EXISTS {name}")
            except Exception:  # noqa: BLE001 - the server is gone or unreachable: nothing more to free from here
                break
        self._cached.clear()

    def _translate(self, exc: Exception) -> WarehouseError:
        message = _message(exc)
        text = message.upper()
        if "OPERATION_CANCELED" in text or "CANCELLED" in text or "CANCELED" in text or "INTERRUPT" in text:
            return self._interrupted()
        if "UNAVAILABLE" in text or "FAILED TO CONNECT" in text or "CONNECTION REFUSED" in text:
            return TransientEngineError(f"Spark connection problem: {message}")
        if "DEADLINE_EXCEEDED" in text or "SESSION_CLOSED" in text or "INVALID_HANDLE.SESSION" in text:
            return TransientEngineError(f"Spark connection problem: {message}")
        return EngineError(message)


def _release(spark: Any) -> None:
    """Release ``spark``'s session on the server and close its channel.

    Not ``SparkSession.stop()``: its client.close() shuts down the response-release thread pool that every session
    of the process shares, under the feet of another engine's running statement (a worker serving two sites)."""
    client = spark.client
    try:
        client.release_session()
    except Exception:  # noqa: BLE001, S110 - the server may already be gone; the session dies with it
        pass
    try:
        client._channel.close()
    except Exception:  # noqa: BLE001, S110 - already closed
        pass
    client._closed = True  # pyspark's mark of a stopped session: never again picked as the default one
    from pyspark.sql.connect.session import SparkSession  # its class attributes, not those of our subclass

    with SparkSession._lock:
        if SparkSession._default_session is spark:
            SparkSession._default_session = None
    if getattr(SparkSession._active_session, "session", None) is spark:
        SparkSession._active_session.session = None


def _owned_session_class() -> type:
    from pyspark.sql.connect.session import SparkSession

    class OwnedSession(SparkSession):
        """A Spark Connect session that the garbage collector never closes (see ``SparkEngine.__init__``)."""

        def __del__(self) -> None:
            pass

    return OwnedSession


def _message(exc: BaseException) -> str:
    """The first paragraph of a Spark error: its class and reason, without the JVM stack."""
    text = str(exc).strip() or type(exc).__name__
    text = text.split("\n\nJVM stacktrace:")[0]
    return " ".join(text.split("\n")[:3]).strip()


def _is_query(sql: str) -> bool:
    head = sql.lstrip().lstrip("(").lstrip()[:6].upper()
    return head in ("SELECT", "WITH  ", "VALUES") or head.startswith("WITH")


def _unquoted(table: str) -> str:
    """``"schema"."table"`` as Spark's DataFrame API takes it (backquotes)."""
    return ".".join(f"`{part.strip(chr(34))}`" for part in table.split("."))


def spark_token(password_env: str | None = None) -> str | None:
    """The cluster's token: from the variable a Source names, else ``SOYANG_SPARK_TOKEN``; None without one."""
    for name in (password_env, "SOYANG_SPARK_TOKEN"):
        if name and os.environ.get(name):
            return os.environ[name]
    return None
