"""The staged load (PostgreSQL).

Each live table gets a staging copy, created from its catalog entry (columns, defaults, identity, NOT NULL,
checks) without indexes; the rows are copied into it, its indexes and constraints are built from the live
table's definitions (pg_index, pg_constraint: the migrations stay their one source) under temporary names,
then the swap drops the live tables and gives the staging tables, indexes, constraints and sequences the live
names. All of it is one transaction, so a failure or a killed loader leaves nothing behind; until the swap the
live tables are only locked against changes of their definitions (no search conflicts with that lock), and the
swap's exclusive lock lasts from the swap to the commit: searches read the old copy during the load and the new
one after, never a mix."""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
from django.db import IntegrityError, OperationalError, connection, transaction

from warehouse.vocabulary.tables import (
    BATCH_ROWS,
    PORTAL_TABLES,
    TABLES,
    TableInput,
    VocabularyError,
    built_rows,
    timed,
)
from warehouse.vocabulary.words import MIN_WORD, words_insert_sql

#: The staged load builds the secondary indexes and unique constraints of its staging tables once, after the
#: copy: much faster than updating them row by row, the trigram GIN indexes most of all, and the unique ancestry
#: pair, whose inserts land all over a b-tree of tens of millions of entries (docs/performance.md, "Loading a
#: vocabulary"). False builds them before the copy, to measure the gain (scripts/bench_vocabulary_load.py and the
#: tests change it, as ``load.POSTGRESQL_WRITE``).
REBUILD_INDEXES = True

#: Rows per COPY statement. Each statement streams its rows BATCH_ROWS at a time while PostgreSQL inserts the
#: ones already sent (the client's parsing and the server's inserting overlap, on two processes); a value the
#: server refuses is traced back to its file line through the statement's positions (8 bytes a row).
COPY_ROWS = 1_000_000

#: COPY's text format: a backslash, TAB, newline or carriage return inside a value is written as an escape.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_LINE_RE = re.compile(r"COPY \S+, line (\d+)")

#: The PostgreSQL advisory lock a load holds until its commit. Two loads at once would build staging tables of
#: the same names from the same live definitions, and the second swap would drop what the first swapped in.
LOAD_LOCK_KEY = 0x766F6361  # "voca"

#: The swap asks for the live tables' exclusive lock this long at a time. Searches that arrive meanwhile queue
#: behind the request, so it must stay short; between tries the searches already running finish.
SWAP_LOCK_TIMEOUT_MS = 500
SWAP_RETRY_PAUSE = 0.1
#: After this long of tries the swap waits for its lock as any DDL does, rather than throw away the load because
#: a long transaction keeps reading the vocabulary.
SWAP_RETRY_SECONDS = 60

#: Memory for building the indexes, for this transaction only and only ever raised: the trigram GIN index on a
#: million names built in 13-15 s with it against 15-25 s with PostgreSQL's default 64 MB.
INDEX_BUILD_MEMORY_KB = 256 * 1024


def _ident(name: str) -> str:
    """A name read from the catalog, quoted for SQL text."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Index:
    """An index or constraint of a live table, as its staging table gets it: ``create`` builds it under the
    temporary name, ``rename`` gives it the live name once the staging table is the live one."""

    name: str
    temporary: str
    primary: bool
    create: str
    rename: str


@dataclass(frozen=True)
class _Staged:
    """One live table and the staging table a load fills (both schema-qualified and quoted), the staging
    table's indexes and constraints, and the swap's statements for its sequences: a serial column's sequence
    passes to the new table before the old one is dropped, an identity sequence takes the old one's name after."""

    live: str
    staging: str
    indexes: tuple[_Index, ...]
    sequences_before_drop: tuple[str, ...]
    sequences_after_drop: tuple[str, ...]
    #: staging name → live name, for the table, its indexes and sequences: messages name what the user knows.
    renames: dict[str, str]


def _in_live_names(text: str, staged: Iterable[_Staged]) -> str:
    """A PostgreSQL message about the staging tables, with the live tables' and indexes' names in it."""
    for table in staged:
        for temporary, name in table.renames.items():
            text = text.replace(f'"{temporary}"', f'"{name}"')
    return text


def load_lock(cursor: Any) -> None:
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOAD_LOCK_KEY])
    if cursor.fetchone()[0]:
        return
    cursor.execute(
        "SELECT a.pid, to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS') FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1 AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        [LOAD_LOCK_KEY],
    )
    holder = cursor.fetchone()
    by = f" (PostgreSQL backend {holder[0]}, started {holder[1]})" if holder else ""
    raise VocabularyError(
        f"another vocabulary load is in progress{by}; nothing was changed: load again once it has finished"
    )


#: What dropping the live tables would break or silently lose: other objects that refer to them (dropping them
#: would need CASCADE, which a load never does) and the parts of a table a staging copy does not take over.
_SWAP_BLOCKERS_SQL = (
    "SELECT format('foreign key %%I of %%s', conname, conrelid::regclass) FROM pg_constraint "
    "WHERE contype = 'f' AND confrelid = ANY(%(tables)s::regclass[]) "
    "UNION ALL SELECT DISTINCT format('view or rule %%s', r.ev_class::regclass) FROM pg_depend d "
    "JOIN pg_rewrite r ON r.oid = d.objid WHERE d.classid = 'pg_rewrite'::regclass "
    "AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY(%(tables)s::regclass[]) "
    "AND r.ev_class <> d.refobjid "
    "UNION ALL SELECT format('trigger %%I on %%s', tgname, tgrelid::regclass) FROM pg_trigger "
    "WHERE tgrelid = ANY(%(tables)s::regclass[]) AND NOT tgisinternal "
    "UNION ALL SELECT format('row security policy %%I on %%s', polname, polrelid::regclass) FROM pg_policy "
    "WHERE polrelid = ANY(%(tables)s::regclass[]) "
    "UNION ALL SELECT format('publication %%I of %%s', p.pubname, r.prrelid::regclass) FROM pg_publication_rel r "
    "JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = ANY(%(tables)s::regclass[]) "
    "ORDER BY 1"
)


def _refuse_swap_blockers(cursor: Any) -> None:
    cursor.execute(_SWAP_BLOCKERS_SQL, {"tables": list(PORTAL_TABLES)})
    blockers = [row[0] for row in cursor.fetchall()]
    if blockers:
        raise VocabularyError(
            "the vocabulary tables are replaced by new ones at each load, which would drop or lose "
            f"{', '.join(blockers)}; nothing was changed: remove them first"
        )


_TABLE_SQL = (
    "SELECT c.oid, n.nspname, quote_ident(n.nspname), quote_ident(c.relname), c.reloptions, "
    "NULLIF(quote_ident(pg_get_userbyid(c.relowner)), quote_ident(current_user)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%(table)s)"
)
#: A table's indexes, with the constraint each backs (its definition for ALTER TABLE … ADD CONSTRAINT), and the
#: foreign keys it holds: (name, name as pg_get_indexdef quotes it, primary key, unique, constraint definition
#: or NULL, index definition or NULL).
_INDEXES_SQL = (
    "SELECT i.relname, quote_ident(i.relname), x.indisprimary, x.indisunique, pg_get_constraintdef(k.oid), "
    "pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid "
    "AND k.contype IN ('p', 'u', 'x') WHERE x.indrelid = %(table)s "
    "UNION ALL SELECT conname, quote_ident(conname), false, false, pg_get_constraintdef(oid), NULL "
    "FROM pg_constraint WHERE conrelid = %(table)s AND contype = 'f' ORDER BY 1"
)
#: The sequences a table's columns own: identity ('i') or serial ('a'): (column, sequence, its name).
_SEQUENCES_SQL = (
    "SELECT a.attname, s.oid::regclass::text, s.relname FROM pg_depend d "
    "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
    "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
    "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
    "AND d.refobjid = %(table)s::regclass AND d.deptype IN ('a', 'i')"
)
#: Privileges granted on a table to others than its owner (CREATE TABLE … LIKE does not copy them).
_GRANTS_SQL = (
    "SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END, "
    "g.privilege_type, g.is_grantable FROM pg_class c, aclexplode(c.relacl) AS g "
    "WHERE c.oid = %(table)s AND g.grantee <> c.relowner"
)


def _stage(cursor: Any, live_name: str) -> _Staged:
    """Create the staging table of ``live_name`` and say how to build its indexes and swap it in."""
    cursor.execute(_TABLE_SQL, {"table": live_name})
    found = cursor.fetchone()
    if found is None:
        raise VocabularyError(f"the table {live_name} is missing: run the migrations first")
    oid, schema, quoted_schema, quoted_live, reloptions, other_owner = found
    staging_name = f"{live_name}__staging"
    live = f"{quoted_schema}.{quoted_live}"
    staging = f"{_ident(schema)}.{_ident(staging_name)}"
    cursor.execute(f"CREATE TABLE {staging} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)")
    if reloptions:
        cursor.execute(f"ALTER TABLE {staging} SET ({', '.join(reloptions)})")
    if other_owner:
        # Loaded by another role than the one that migrates (a superuser, a member of the owner role): the
        # migrations must still own the tables they alter.
        cursor.execute(f"ALTER TABLE {staging} OWNER TO {other_owner}")
    cursor.execute(_GRANTS_SQL, {"table": oid})
    for grantee, privilege, grantable in cursor.fetchall():
        option = " WITH GRANT OPTION" if grantable else ""
        cursor.execute(f"GRANT {privilege} ON TABLE {staging} TO {grantee}{option}")
    indexes = _staged_indexes(cursor, oid, schema=schema, live=live, staging_name=staging_name)
    before_drop, after_drop, sequence_names = _staged_sequences(cursor, oid, staging=staging)
    return _Staged(
        live=live,
        staging=staging,
        indexes=indexes,
        sequences_before_drop=before_drop,
        sequences_after_drop=after_drop,
        renames={staging_name: live_name, **{index.temporary: index.name for index in indexes}, **sequence_names},
    )


def _staged_indexes(cursor: Any, oid: int, *, schema: str, live: str, staging_name: str) -> tuple[_Index, ...]:
    """The live table's indexes and constraints, as the staging table gets them: named after the staging table
    and numbered while loading (the live names are taken, and a suffix could overflow 63 characters)."""
    staging = f"{_ident(schema)}.{_ident(staging_name)}"
    indexes = []
    cursor.execute(_INDEXES_SQL, {"table": oid})
    for number, (name, quoted, primary, unique, constraint, index) in enumerate(cursor.fetchall(), start=1):
        temporary = f"{staging_name}_{number}"
        if constraint is not None:
            create = f"ALTER TABLE {staging} ADD CONSTRAINT {_ident(temporary)} {constraint}"
            rename = f"ALTER TABLE {live} RENAME CONSTRAINT {_ident(temporary)} TO {_ident(name)}"
        else:
            # pg_get_indexdef: CREATE [UNIQUE] INDEX name ON schema.table USING method (…) [WHERE …]
            kind = "UNIQUE INDEX" if unique else "INDEX"
            head = f"CREATE {kind} {quoted} ON {live} "
            if not index.startswith(head):
                raise VocabularyError(f"cannot rebuild index {name} of {live} from its definition: {index}")
            create = f"CREATE {kind} {_ident(temporary)} ON {staging} {index[len(head) :]}"
            rename = f"ALTER INDEX {_ident(schema)}.{_ident(temporary)} RENAME TO {_ident(name)}"
        indexes.append(_Index(name=name, temporary=temporary, primary=primary, create=create, rename=rename))
    return tuple(indexes)


def _staged_sequences(
    cursor: Any, oid: int, *, staging: str
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """The swap's statements for the live table's sequences, before and after the live table is dropped, and
    the staging sequences' names → the live ones'. CREATE TABLE … LIKE gives an identity column a sequence of
    its own, which takes the old one's name; a serial column's default still calls the live table's sequence,
    which passes to the new table so that dropping the old one keeps it."""
    cursor.execute(_SEQUENCES_SQL, {"table": oid})
    live_sequences = {column: (sequence, name) for column, sequence, name in cursor.fetchall()}
    cursor.execute(_SEQUENCES_SQL, {"table": staging})
    staging_sequences = {column: (sequence, name) for column, sequence, name in cursor.fetchall()}
    before_drop, after_drop, names = [], [], {}
    for column, (sequence, name) in live_sequences.items():
        if column in staging_sequences:
            own, own_name = staging_sequences[column]
            names[own_name] = name
            after_drop.append(f"ALTER SEQUENCE {own} RENAME TO {_ident(name)}")
        else:
            before_drop.append(f"ALTER SEQUENCE {sequence} OWNED BY {staging}.{_ident(column)}")
    return tuple(before_drop), tuple(after_drop), names


def _copy_line(values: tuple[Any, ...]) -> str:
    """One row in COPY's text format (the hot loop of a load: millions of calls)."""
    fields = []
    for value in values:
        if value.__class__ is str:
            if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
                value = value.translate(_COPY_ESCAPES)
            fields.append(value)
        elif value is None:
            fields.append("\\N")
        else:
            fields.append(str(value))  # an int, or a date (str() is its ISO format)
    return "\t".join(fields) + "\n"


class _CopyStream:
    """What one COPY statement reads: the next built rows, serialized BATCH_ROWS at a time (memory stays bounded
    whatever the size of the file), at most COPY_ROWS of them."""

    def __init__(self, rows: Iterator[tuple[int, tuple[Any, ...]]]) -> None:
        self.positions = array("q")
        self.exhausted = False
        #: An error of ours raised inside ``read`` (psycopg2 only reports "error in .read() call").
        self.error: Exception | None = None
        self._rows = rows
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        try:
            while self._offset >= len(self._buffer):
                if self.exhausted or len(self.positions) >= COPY_ROWS:
                    return b""
                self._buffer, self._offset = self._next_batch(), 0
        except Exception as exc:
            self.error = exc
            raise
        end = len(self._buffer) if size < 0 else self._offset + size
        piece = self._buffer[self._offset : end]
        self._offset += len(piece)
        return piece

    def _next_batch(self) -> bytes:
        lines = []
        positions = self.positions
        room = min(BATCH_ROWS, COPY_ROWS - len(positions))
        for position, values in self._rows:
            lines.append(_copy_line(values))
            positions.append(position)
            if len(lines) >= room:
                break
        else:
            self.exhausted = True
        return "".join(lines).encode("utf-8")


def _write_copy(source: TableInput, table: str, staged: dict[str, _Staged]) -> int:
    """COPY the built rows of ``table`` into its staging table, COPY_ROWS rows per statement."""
    model, build, columns = TABLES[table]
    sql = f"COPY {staged[model._meta.db_table].staging} ({', '.join(columns)}) FROM STDIN"
    rows = built_rows(source, build)
    written = 0
    with connection.cursor() as cursor:
        while True:
            stream = _CopyStream(rows)
            try:
                # The buffer size positionally: Django's debug cursor wrapper (DEBUG) passes on no keywords.
                cursor.copy_expert(sql, stream, 1 << 20)
            except psycopg2.Error as exc:
                # The transaction is aborted: raising rolls the whole load back, the previous vocabulary stays.
                if stream.error is not None:
                    raise stream.error from None
                if isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError):
                    message = _copy_error(exc, stream.positions, source)
                    raise VocabularyError(_in_live_names(message, staged.values())) from exc
                raise
            written += len(stream.positions)
            if stream.exhausted:
                return written


def _copy_error(exc: psycopg2.Error, positions: array, source: TableInput) -> str:
    """``FILE, line N: reason`` for a value PostgreSQL refused (a duplicate id, a number out of range)."""
    diag = exc.diag
    reason = diag.message_primary or str(exc).splitlines()[0]
    if diag.message_detail:
        reason += f" ({diag.message_detail})"
    match = _COPY_LINE_RE.search(diag.context or "")
    if match and 0 < int(match.group(1)) <= len(positions):
        return f"{source.at(positions[int(match.group(1)) - 1])}: {reason}"
    return f"{source.label}: {reason}"


def _indexes_create(
    staged: dict[str, _Staged], *, primary: bool, labels: dict[str, str], steps: dict[str, float] | None
) -> None:
    """Build the staging tables' primary keys, or their other indexes and constraints (``steps`` receives the
    seconds of each under its live name). A duplicate a unique constraint finds now is reported with the file
    (``labels``: portal table → file name) and the duplicated key, not its line."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'")
        if cursor.fetchone()[0] < INDEX_BUILD_MEMORY_KB:
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY_KB}kB'")
        for table, staging in staged.items():
            for index in staging.indexes:
                if index.primary != primary:
                    continue
                with timed({} if steps is None else steps, f"index {index.name}"):
                    try:
                        cursor.execute(index.create)
                    except IntegrityError as exc:
                        diag = getattr(exc.__cause__, "diag", None)
                        detail = f" ({diag.message_detail})" if diag is not None and diag.message_detail else ""
                        message = _in_live_names(str(exc).splitlines()[0], staged.values())
                        raise VocabularyError(f"{labels.get(table, table)}: {message}{detail}") from exc


def _lock_for_swap(cursor: Any, tables: str) -> None:
    """Take the live tables' exclusive lock in short tries (see SWAP_LOCK_TIMEOUT_MS), then by waiting."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    (previous,) = cursor.fetchone()
    deadline = time.monotonic() + SWAP_RETRY_SECONDS
    while time.monotonic() < deadline:
        try:
            # A savepoint: a try that times out gives back the locks it had taken on the first tables.
            with transaction.atomic():
                cursor.execute(f"SET LOCAL lock_timeout = {SWAP_LOCK_TIMEOUT_MS}")
                cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        except OperationalError as exc:
            if not isinstance(exc.__cause__, psycopg2.errors.LockNotAvailable | psycopg2.errors.DeadlockDetected):
                raise
            time.sleep(SWAP_RETRY_PAUSE)
        else:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
            return
    cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")


def _swap(staged: dict[str, _Staged]) -> None:
    """Replace the live tables with the staging ones under the live names, inside the caller's transaction."""
    with connection.cursor() as cursor:
        _lock_for_swap(cursor, ", ".join(table.live for table in staged.values()))
        # Nothing stopped other sessions from adding a foreign key or a view to the live tables during the load.
        _refuse_swap_blockers(cursor)
        for table in staged.values():
            for statement in table.sequences_before_drop:
                cursor.execute(statement)
        cursor.execute(f"DROP TABLE {', '.join(table.live for table in staged.values())}")
        for live_name, table in staged.items():
            cursor.execute(f"ALTER TABLE {table.staging} RENAME TO {_ident(live_name)}")
            for index in table.indexes:
                cursor.execute(index.rename)
            for statement in table.sequences_after_drop:
                cursor.execute(statement)


def load_staged(tables: dict[str, TableInput], steps: dict[str, float]) -> dict[str, int]:
    """Load ``tables``' rows into staging tables and swap them in (see above), inside the caller's transaction;
    ``steps`` receives the seconds of each step."""
    with connection.cursor() as cursor:
        # Until the commit, the live definitions the staging tables copy hold still: a migration's CREATE INDEX,
        # ALTER TABLE or new trigger waits for the load rather than be dropped by the swap. Searches (ACCESS
        # SHARE) do not conflict with this lock; a new view does not either, hence the check again at the swap.
        cursor.execute(f"LOCK TABLE {', '.join(PORTAL_TABLES)} IN SHARE UPDATE EXCLUSIVE MODE")
        # Refused now rather than at the swap, after the whole load.
        _refuse_swap_blockers(cursor)
        staged = {live_name: _stage(cursor, live_name) for live_name in PORTAL_TABLES}
    labels = {TABLES[table][0]._meta.db_table: source.label for table, source in tables.items()}
    _indexes_create(staged, primary=True, labels=labels, steps=None)
    if not REBUILD_INDEXES:
        _indexes_create(staged, primary=False, labels=labels, steps=None)
    rows: dict[str, int] = {}
    for table, source in tables.items():
        with timed(steps, table):
            rows[table] = _write_copy(source, table, staged)
    with timed(steps, "concept_word"), connection.cursor() as cursor:
        # Built from the staging concepts, swapped with them: the word list always matches the names searched.
        cursor.execute(
            words_insert_sql(
                concepts=staged["warehouse_concept"].staging, words=staged["warehouse_conceptword"].staging
            ),
            {"min": MIN_WORD},
        )
        rows["concept_word"] = cursor.rowcount
    if REBUILD_INDEXES:
        with timed(steps, "indexes"):
            _indexes_create(staged, primary=False, labels=labels, steps=steps)
    with timed(steps, "analyze"), connection.cursor() as cursor:
        # Before the swap: the first searches on the new tables are planned with their statistics.
        for table in staged.values():
            cursor.execute(f"ANALYZE {table.staging}")
    with timed(steps, "swap"):
        _swap(staged)
    return rows
