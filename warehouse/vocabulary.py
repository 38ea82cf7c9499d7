"""The portal's one copy of the standardized vocabulary: loading it, counting concepts per site, searching it.

The vocabulary (CONCEPT, CONCEPT_ANCESTOR, the 'Maps to' / 'Mapped from' rows of CONCEPT_RELATIONSHIP,
VOCABULARY, DOMAIN) is public and the same at every site, so the portal keeps it in its own database and
searches it without asking any site. What is site-specific are the counts: ``concept_counts_refresh`` runs on
the site's worker and stores aggregates only (records and persons per standard concept), never rows.

Knows nothing of users or privacy: ``cohorts`` filters which sites' counts a user sees and protects them.
"""

from __future__ import annotations

import csv
import functools
import gzip
import re
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from warehouse.engines import Engine, WarehouseError, quote_ident
from warehouse.loader import find_csv_files
from warehouse.models import (
    Concept,
    ConceptAncestor,
    ConceptCount,
    ConceptRelationship,
    ConceptWord,
    Domain,
    Source,
    Vocabulary,
)

#: Relationships kept from CONCEPT_RELATIONSHIP: the ones concept sets resolve through and the concept page shows.
KEPT_RELATIONSHIPS = ("Maps to", "Mapped from")
BATCH_ROWS = 10_000

#: Domain tables and their standard concept column, counted per site.
COUNTED_COLUMNS = (
    ("condition_occurrence", "condition_concept_id"),
    ("drug_exposure", "drug_concept_id"),
    ("measurement", "measurement_concept_id"),
    ("procedure_occurrence", "procedure_concept_id"),
    ("observation", "observation_concept_id"),
    ("visit_occurrence", "visit_concept_id"),
    ("device_exposure", "device_concept_id"),
)

STANDARD_CHOICES = ("S", "C", "N", "any")
MAX_LIMIT = 100
MAX_OFFSET = 1_000
MAX_QUERY_LENGTH = 200
INT_MAX = 2**31 - 1


class VocabularyError(WarehouseError):
    """The vocabulary cannot be loaded or searched as asked; the message says why. Nothing was changed."""


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocabularyLoadReport:
    """Rows loaded per table, how long it took, and the seconds of each step (each table's copy, the word list,
    each index built after the copy, ANALYZE, the swap), which scripts/bench_vocabulary_load.py prints."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@functools.lru_cache(maxsize=1 << 16)
def _date_text(text: str) -> date:
    # Athena writes 20070101, the CDM CSV exports 2007-01-01 (sometimes with a time). A real vocabulary has a
    # few thousand distinct dates over millions of rows: each is parsed once.
    text = text.strip()
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    return date.fromisoformat(text[:10])


def _date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return _date_text(str(value))


# The row builders: one source row (a dict of its columns) → the values of the portal table's columns, in the
# order of _TABLES; None for a row that is not kept. They are the one validation of the input whatever writes
# the rows (COPY on PostgreSQL, bulk_create elsewhere); KeyError / ValueError mean a bad row.


def _concept(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        int(row["concept_id"]),
        _text(row["concept_name"])[:255],
        _text(row["domain_id"]),
        _text(row["vocabulary_id"]),
        _text(row["concept_class_id"]),
        _text(row.get("standard_concept")),
        _text(row["concept_code"]),
        _date(row.get("valid_start_date")),
        _date(row.get("valid_end_date")),
        _text(row.get("invalid_reason")),
    )


def _ancestor(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        int(row["ancestor_concept_id"]),
        int(row["descendant_concept_id"]),
        int(row["min_levels_of_separation"]),
        int(row["max_levels_of_separation"]),
    )


def _relationship(row: dict[str, Any]) -> tuple[Any, ...] | None:
    if row["relationship_id"] not in KEPT_RELATIONSHIPS:
        return None
    return (
        int(row["concept_id_1"]),
        int(row["concept_id_2"]),
        _text(row["relationship_id"]),
        _text(row.get("invalid_reason")),
    )


def _vocabulary(row: dict[str, Any]) -> tuple[Any, ...]:
    return (_text(row["vocabulary_id"]), _text(row["vocabulary_name"])[:255])


def _domain(row: dict[str, Any]) -> tuple[Any, ...]:
    return (_text(row["domain_id"]), _text(row["domain_name"])[:255])


#: table → (model, row builder, columns read from a source = the model's columns the builder fills, in order).
_TABLES: dict[str, tuple[type, Any, tuple[str, ...]]] = {
    "vocabulary": (Vocabulary, _vocabulary, ("vocabulary_id", "vocabulary_name")),
    "domain": (Domain, _domain, ("domain_id", "domain_name")),
    "concept": (
        Concept,
        _concept,
        (
            "concept_id",
            "concept_name",
            "domain_id",
            "vocabulary_id",
            "concept_class_id",
            "standard_concept",
            "concept_code",
            "valid_start_date",
            "valid_end_date",
            "invalid_reason",
        ),
    ),
    "concept_ancestor": (
        ConceptAncestor,
        _ancestor,
        ("ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation", "max_levels_of_separation"),
    ),
    "concept_relationship": (
        ConceptRelationship,
        _relationship,
        ("concept_id_1", "concept_id_2", "relationship_id", "invalid_reason"),
    ),
}

#: Keyset order used to read each table from a source in batches (row-value comparison, both engines).
_KEYS = {
    "vocabulary": ("vocabulary_id",),
    "domain": ("domain_id",),
    "concept": ("concept_id",),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
}

#: The portal tables a load replaces (PostgreSQL names), in the order the swap locks them: the concepts first,
#: as the readers that touch several of them in one transaction do (the search reads the concepts, then the
#: word list), so that the swap's queued lock and a reader never wait for each other in a cycle.
_PORTAL_TABLES = (
    "warehouse_concept",
    "warehouse_conceptancestor",
    "warehouse_conceptrelationship",
    "warehouse_vocabulary",
    "warehouse_domain",
    "warehouse_conceptword",
)

#: How rows reach PostgreSQL: "copy" (the staged load, ``_load_staged``) or "bulk_create" (the ORM's multi-row
#: INSERT into the emptied live tables, what other databases always use). Only scripts/bench_vocabulary_load.py
#: and the tests change these two, to measure the gain and to compare what each stores.
POSTGRESQL_WRITE = "copy"
#: The staged load builds the secondary indexes and unique constraints of its staging tables once, after the
#: copy: much faster than updating them row by row, the trigram GIN indexes most of all, and the unique ancestry
#: pair, whose inserts land all over a b-tree of tens of millions of entries (docs/performance.md, "Loading a
#: vocabulary"). False builds them before the copy, to measure the gain.
REBUILD_INDEXES = True


@dataclass(frozen=True)
class _Input:
    """The rows of one table, each with its position (file line, or row number in a source's table), and how a
    message names the place: ``CONCEPT.csv, line 12`` or ``vocab.concept, row 12``."""

    rows: Iterable[tuple[int, dict[str, Any]]]
    label: str
    unit: str

    def at(self, position: int) -> str:
        return f"{self.label}, {self.unit} {position}"


def _built_rows(source: _Input, build: Any) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """The rows of ``source`` the portal keeps, built by the table's row builder, each with its position. Both
    ways of writing read their rows here, so a bad row is named the same whichever writes it."""
    for position, row in source.rows:
        try:
            values = build(row)
        except (KeyError, ValueError) as exc:
            raise VocabularyError(f"{source.at(position)}: bad row ({exc})") from exc
        if values is not None:
            yield position, values


@contextmanager
def _timed(steps: dict[str, float], name: str) -> Iterator[None]:
    """Record in ``steps[name]`` the seconds the block took (when it completes: a failed load reports no steps)."""
    started = time.monotonic()
    yield
    steps[name] = time.monotonic() - started


# ---------------------------------------------------------------------------------------------------------------
# The in-place load: other databases, and the ORM reference on PostgreSQL
# ---------------------------------------------------------------------------------------------------------------


def _clear() -> None:
    if connection.vendor == "postgresql":
        # TRUNCATE holds the tables' ACCESS EXCLUSIVE lock until the commit: searches wait for the whole load.
        # Only the ORM reference takes this path on PostgreSQL; the portal's loads are staged.
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(_PORTAL_TABLES)}")
        return
    for model in (ConceptAncestor, ConceptRelationship, Concept, Vocabulary, Domain, ConceptWord):
        model.objects.all().delete()


def _write_bulk_create(source: _Input, table: str) -> int:
    model, build, columns = _TABLES[table]
    written = 0
    batch: list[Any] = []
    for _position, values in _built_rows(source, build):
        batch.append(model(**dict(zip(columns, values, strict=True))))
        if len(batch) >= BATCH_ROWS:
            model.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


def _load_in_place(tables: dict[str, _Input], steps: dict[str, float]) -> dict[str, int]:
    """Empty the live tables and write the rows into them with the ORM: the embedded demo portal's SQLite (a
    small vocabulary, nobody searching during a load), and what the tests compare COPY with on PostgreSQL."""
    _clear()
    rows: dict[str, int] = {}
    for table, source in tables.items():
        with _timed(steps, table):
            rows[table] = _write_bulk_create(source, table)
    with _timed(steps, "concept_word"):
        rows["concept_word"] = words_rebuild()
    if connection.vendor == "postgresql":
        with _timed(steps, "analyze"), connection.cursor() as cursor:
            cursor.execute("ANALYZE warehouse_concept")
            cursor.execute("ANALYZE warehouse_conceptword")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The staged load (PostgreSQL)
#
# Each live table gets a staging copy, created from its catalog entry (columns, defaults, identity, NOT NULL,
# checks) without indexes; the rows are copied into it, its indexes and constraints are built from the live
# table's definitions (pg_index, pg_constraint: the migrations stay their one source) under temporary names,
# then the swap drops the live tables and gives the staging tables, indexes, constraints and sequences the live
# names. All of it is one transaction, so a failure or a killed loader leaves nothing behind; until the swap the
# live tables are only locked against changes of their definitions (no search conflicts with that lock), and the
# swap's exclusive lock lasts from the swap to the commit: searches read the old copy during the load and the new
# one after, never a mix.
# ---------------------------------------------------------------------------------------------------------------

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


def _load_lock(cursor: Any) -> None:
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
    cursor.execute(_SWAP_BLOCKERS_SQL, {"tables": list(_PORTAL_TABLES)})
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


def _write_copy(source: _Input, table: str, staged: dict[str, _Staged]) -> int:
    """COPY the built rows of ``table`` into its staging table, COPY_ROWS rows per statement."""
    model, build, columns = _TABLES[table]
    sql = f"COPY {staged[model._meta.db_table].staging} ({', '.join(columns)}) FROM STDIN"
    rows = _built_rows(source, build)
    written = 0
    with connection.cursor() as cursor:
        while True:
            stream = _CopyStream(rows)
            try:
                cursor.copy_expert(sql, stream, size=1 << 20)
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


def _copy_error(exc: psycopg2.Error, positions: array, source: _Input) -> str:
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
                with _timed({} if steps is None else steps, f"index {index.name}"):
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


def _load_staged(tables: dict[str, _Input], steps: dict[str, float]) -> dict[str, int]:
    """Load ``tables``' rows into staging tables and swap them in (see above), inside the caller's transaction;
    ``steps`` receives the seconds of each step."""
    with connection.cursor() as cursor:
        # Until the commit, the live definitions the staging tables copy hold still: a migration's CREATE INDEX,
        # ALTER TABLE or new trigger waits for the load rather than be dropped by the swap. Searches (ACCESS
        # SHARE) do not conflict with this lock; a new view does not either, hence the check again at the swap.
        cursor.execute(f"LOCK TABLE {', '.join(_PORTAL_TABLES)} IN SHARE UPDATE EXCLUSIVE MODE")
        # Refused now rather than at the swap, after the whole load.
        _refuse_swap_blockers(cursor)
        staged = {live_name: _stage(cursor, live_name) for live_name in _PORTAL_TABLES}
    labels = {_TABLES[table][0]._meta.db_table: source.label for table, source in tables.items()}
    _indexes_create(staged, primary=True, labels=labels, steps=None)
    if not REBUILD_INDEXES:
        _indexes_create(staged, primary=False, labels=labels, steps=None)
    rows: dict[str, int] = {}
    for table, source in tables.items():
        with _timed(steps, table):
            rows[table] = _write_copy(source, table, staged)
    with _timed(steps, "concept_word"), connection.cursor() as cursor:
        # Built from the staging concepts, swapped with them: the word list always matches the names searched.
        cursor.execute(
            _words_insert_sql(
                concepts=staged["warehouse_concept"].staging, words=staged["warehouse_conceptword"].staging
            ),
            {"min": MIN_WORD},
        )
        rows["concept_word"] = cursor.rowcount
    if REBUILD_INDEXES:
        with _timed(steps, "indexes"):
            _indexes_create(staged, primary=False, labels=labels, steps=steps)
    with _timed(steps, "analyze"), connection.cursor() as cursor:
        # Before the swap: the first searches on the new tables are planned with their statistics.
        for table in staged.values():
            cursor.execute(f"ANALYZE {table.staging}")
    with _timed(steps, "swap"):
        _swap(staged)
    return rows


def _load(tables: dict[str, _Input], steps: dict[str, float]) -> dict[str, int]:
    """Replace the vocabulary tables with ``tables``' rows (a savepoint of the caller's transaction, which holds
    the swapped tables' exclusive lock until it ends: commit soon); ``steps`` receives the seconds of each step."""
    with transaction.atomic():
        if connection.vendor != "postgresql":
            return _load_in_place(tables, steps)
        with connection.cursor() as cursor:
            _load_lock(cursor)
        if POSTGRESQL_WRITE == "copy":
            return _load_staged(tables, steps)
        return _load_in_place(tables, steps)


def _rows_from_engine(engine: Engine, schema: str, table: str) -> Iterator[tuple[int, dict[str, Any]]]:
    _model, _build, columns = _TABLES[table]
    keys = _KEYS[table]
    select = ", ".join(quote_ident(c) for c in columns)
    qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
    order = ", ".join(keys)
    where = ""
    if table == "concept_relationship":
        where = "relationship_id IN ('Maps to', 'Mapped from')"
    last: tuple[Any, ...] | None = None
    position = 0
    while True:
        conditions = [where] if where else []
        params: dict[str, Any] = {}
        if last is not None:
            names = [f"k{i}" for i in range(len(keys))]
            conditions.append(f"({order}) > ({', '.join(f'%({n})s' for n in names)})")
            params = dict(zip(names, last, strict=True))
        clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        batch = engine.fetchall(f"SELECT {select} FROM {qualified}{clause} ORDER BY {order} LIMIT {BATCH_ROWS}", params)
        if not batch:
            return
        for values in batch:
            position += 1
            yield position, dict(zip(columns, values, strict=True))
        last = tuple(batch[-1][columns.index(k)] for k in keys)
        if len(batch) < BATCH_ROWS:
            return


def _rows_from_file(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:  # type: ignore[operator]
        # Athena's TAB-separated files do not quote: a quote character is part of a concept name there.
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = [name.strip().lower() for name in next(reader)]
        line = 1
        try:
            for line, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise VocabularyError(f"{path.name}, line {line}: {len(values)} fields, expected {len(header)}")
                yield line, dict(zip(header, values, strict=True))
        except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
            raise VocabularyError(f"{path.name}, after line {line}: cannot read the file ({exc})") from exc


WORD_RE = re.compile(r"[a-z0-9]+")
MIN_WORD = 3


def _words_insert_sql(*, concepts: str, words: str) -> str:
    """The statement filling the word list ``words`` from the names of ``concepts`` (PostgreSQL)."""
    return (
        f"INSERT INTO {words} (word) SELECT DISTINCT w FROM {concepts}, "
        "regexp_split_to_table(lower(concept_name), '[^a-z0-9]+') AS w WHERE length(w) BETWEEN %(min)s AND 100"
    )


#: The live tables' statement (scripts/bench_vocabulary.py builds its word list with it too).
WORDS_INSERT_SQL = _words_insert_sql(concepts="warehouse_concept", words="warehouse_conceptword")


def words_rebuild() -> int:
    """Refill ConceptWord from the concept names (inside the caller's transaction); returns the word count."""
    ConceptWord.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(WORDS_INSERT_SQL, {"min": MIN_WORD})
            return cursor.rowcount
    words = {
        w
        for name in Concept.objects.values_list("concept_name", flat=True).iterator()
        for w in WORD_RE.findall(name.lower())
        if MIN_WORD <= len(w) <= 100
    }
    ConceptWord.objects.bulk_create([ConceptWord(word=w) for w in words], batch_size=BATCH_ROWS)
    return len(words)


@transaction.atomic
def vocabulary_load_from_source(*, source: Source, engine: Engine, actor: Any = None) -> VocabularyLoadReport:
    """Replace the portal's vocabulary with the one in ``source``'s vocabulary schema (one transaction; on
    PostgreSQL searches read the previous vocabulary until it commits)."""
    started = time.monotonic()
    schema = source.vocabulary_schema
    present = {
        name
        for (name,) in engine.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s", {"schema": schema}
        )
    }
    if "concept" not in present:
        raise VocabularyError(f"source {source.key} has no concept table in schema {schema}")
    tables = {
        table: _Input(rows=_rows_from_engine(engine, schema, table), label=f"{schema}.{table}", unit="row")
        for table in _TABLES
        if table in present
    }
    steps: dict[str, float] = {}
    rows = _load(tables, steps)
    audit_record(action="vocabulary_load", actor=actor, source_key=source.key, detail={"rows": rows})
    return VocabularyLoadReport(rows=rows, seconds=time.monotonic() - started, steps=steps)


@transaction.atomic
def vocabulary_load_from_directory(*, directory: Path, actor: Any = None) -> VocabularyLoadReport:
    """Replace the portal's vocabulary with the OMOP CSV files in ``directory`` (CDM comma CSV or Athena TAB
    files, plain or gzipped). Raises ``VocabularyError`` naming the file (and line) at fault; nothing is changed
    then. On PostgreSQL searches read the previous vocabulary until the commit."""
    started = time.monotonic()
    steps: dict[str, float] = {}
    rows = _copy_from_directory(Path(directory), steps)
    audit_record(action="vocabulary_load", actor=actor, detail={"rows": rows, "directory": str(directory)})
    return VocabularyLoadReport(rows=rows, seconds=time.monotonic() - started, steps=steps)


def vocabulary_copy_from_directory(*, directory: Path) -> dict[str, int]:
    """The copy itself, without the audit event (the service above adds it and its transaction): for callers
    that manage their own transaction, such as test fixtures shared by a module. The swapped tables stay
    locked against searches until that transaction ends."""
    return _copy_from_directory(Path(directory), {})


def _copy_from_directory(directory: Path, steps: dict[str, float]) -> dict[str, int]:
    try:
        files = find_csv_files(directory)
    except WarehouseError as exc:
        raise VocabularyError(str(exc)) from exc
    if "concept" not in files:
        raise VocabularyError(f"{directory} has no CONCEPT.csv")
    for table, csv_file in files.items():
        if table not in _TABLES:
            continue
        missing = set(_TABLES[table][2]) - {"standard_concept", "invalid_reason"} - set(csv_file.columns)
        if missing:
            raise VocabularyError(f"{csv_file.path.name}: missing columns {', '.join(sorted(missing))}")
    tables = {
        table: _Input(
            rows=_rows_from_file(files[table].path, files[table].delimiter), label=files[table].path.name, unit="line"
        )
        for table in _TABLES
        if table in files
    }
    return _load(tables, steps)


# ---------------------------------------------------------------------------------------------------------------
# Counts per site (run by the site's worker)
# ---------------------------------------------------------------------------------------------------------------


def concept_counts_sql(cdm_schema: str) -> str:
    """Records and distinct persons per standard concept over the domain tables of one CDM."""
    schema = quote_ident(cdm_schema)
    parts = " UNION ALL ".join(
        f"SELECT {quote_ident(column)} AS concept_id, person_id FROM {schema}.{quote_ident(table)}"
        for table, column in COUNTED_COLUMNS
    )
    return (
        f"SELECT concept_id, COUNT(*), COUNT(DISTINCT person_id) FROM ({parts}) AS events "
        "WHERE concept_id IS NOT NULL AND concept_id <> 0 GROUP BY concept_id"
    )


@transaction.atomic
def concept_counts_refresh(*, source: Source, engine: Engine, actor: Any = None) -> int:
    """Replace ``source``'s concept counts with fresh ones computed on its CDM. Returns the concepts counted."""
    previous = engine.statement_timeout_seconds
    # A full scan of every domain table: longer than a cohort query may take on a large warehouse.
    engine.set_statement_timeout(0)
    try:
        rows = engine.fetchall(concept_counts_sql(source.cdm_schema))
    finally:
        engine.set_statement_timeout(previous)
    now = timezone.now()
    ConceptCount.objects.filter(source=source).delete()
    ConceptCount.objects.bulk_create(
        [
            ConceptCount(source=source, concept_id=int(cid), record_count=int(r), person_count=int(p), computed_at=now)
            for cid, r, p in rows
        ],
        batch_size=BATCH_ROWS,
    )
    audit_record(action="concept_counts_refresh", actor=actor, source_key=source.key, detail={"concepts": len(rows)})
    return len(rows)


def concept_counts(*, concept_ids: Iterable[int], sources: Iterable[Source]) -> dict[tuple[int, int], ConceptCount]:
    """Stored counts keyed by (source id, concept id), for the given sources only."""
    source_ids = [s.pk for s in sources]
    ids = list(concept_ids)
    if not source_ids or not ids:
        return {}
    found = ConceptCount.objects.filter(source_id__in=source_ids, concept_id__in=ids)
    return {(c.source_id, c.concept_id): c for c in found}


# ---------------------------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConceptQuery:
    """A validated search: build it with ``concept_query`` (raises ``ValueError`` with a message)."""

    text: str
    domain: str = ""
    vocabulary: str = ""
    standard: str = "any"
    include_invalid: bool = False
    limit: int = 25
    offset: int = 0

    @property
    def words(self) -> list[str]:
        return [w for w in re.findall(r"\w+", self.text.lower()) if w]

    @property
    def as_id(self) -> int | None:
        return int(self.text) if self.text.isdigit() and int(self.text) <= INT_MAX else None


def _int_param(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return number


def concept_query(
    *,
    q: Any,
    domain: Any = "",
    vocabulary: Any = "",
    standard: Any = "any",
    include_invalid: Any = False,
    limit: Any = 25,
    offset: Any = 0,
) -> ConceptQuery:
    """Validate raw search parameters (from a query string) into a ``ConceptQuery``; ``ValueError`` otherwise."""
    text = str(q or "").strip()
    if not text:
        raise ValueError("type a concept name, code or id to search")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValueError(f"the search text is longer than {MAX_QUERY_LENGTH} characters")
    standard = str(standard or "any")
    if standard not in STANDARD_CHOICES:
        raise ValueError("standard must be S (standard), C (classification), N (non-standard) or any")
    for name, value in (("domain", domain), ("vocabulary", vocabulary)):
        if value and (len(str(value)) > 20 or not re.fullmatch(r"[\w /&.-]+", str(value))):
            raise ValueError(f"unknown {name} {value!r}")
    return ConceptQuery(
        text=text,
        domain=str(domain or ""),
        vocabulary=str(vocabulary or ""),
        standard=standard,
        include_invalid=str(include_invalid).lower() in ("1", "true", "on", "yes"),
        limit=_int_param(limit, "limit", 25, 1, MAX_LIMIT),
        offset=_int_param(offset, "offset", 0, 0, MAX_OFFSET),
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters_sql(query: ConceptQuery, params: dict[str, Any]) -> str:
    conditions = []
    if query.domain:
        conditions.append("domain_id = %(domain)s")
        params["domain"] = query.domain
    if query.vocabulary:
        conditions.append("vocabulary_id = %(vocabulary)s")
        params["vocabulary"] = query.vocabulary
    if query.standard in ("S", "C"):
        conditions.append("standard_concept = %(standard)s")
        params["standard"] = query.standard
    elif query.standard == "N":
        conditions.append("standard_concept = ''")
    if not query.include_invalid:
        conditions.append("invalid_reason = ''")
    return "".join(f" AND {c}" for c in conditions)


#: How many matches of one kind (code, exact name, prefix, words) are ranked: enough for every page a person
#: reads, bounded so that a common word over millions of concepts stays fast.
CANDIDATES = 500


def search_sql(query: ConceptQuery) -> tuple[str, dict[str, Any]]:
    """The PostgreSQL statement of a search and its parameters.

    Ranks: 0 id, 1 code, 2 exact name, 3 name prefix, 4 every word in the name; then standard concepts
    first, trigram similarity, shorter names. Each kind is found through its own index (b-tree on the id,
    upper(code), lower(name); trigram GIN for the words) and capped before ranking.
    """
    params: dict[str, Any] = {
        "q": query.text,
        "q_lower": query.text.lower(),
        "prefix": _like_escape(query.text.lower()) + "%",
        "cap": max(CANDIDATES, query.offset + query.limit),
        "limit": query.limit,
        "offset": query.offset,
    }
    filters = _filters_sql(query, params)
    branches = []
    if query.as_id is not None:
        params["id"] = query.as_id
        branches.append(f"SELECT concept_id, 0 AS rank FROM warehouse_concept WHERE concept_id = %(id)s{filters}")
    branches += [
        "(SELECT concept_id, 1 FROM warehouse_concept WHERE upper(concept_code) = upper(%(q)s)"
        f"{filters} LIMIT %(cap)s)",
        f"(SELECT concept_id, 2 FROM warehouse_concept WHERE lower(concept_name) = %(q_lower)s{filters} LIMIT %(cap)s)",
        f"(SELECT concept_id, 3 FROM warehouse_concept WHERE lower(concept_name) LIKE %(prefix)s{filters} "
        "LIMIT %(cap)s)",
    ]
    # Words of three letters or more use the trigram index; shorter ones only narrow those matches.
    long_words = [w for w in query.words if len(w) >= 3]
    if long_words:
        word_conditions = []
        for i, word in enumerate(query.words):
            params[f"w{i}"] = f"%{_like_escape(word)}%"
            word_conditions.append(f"concept_name ILIKE %(w{i})s")
        branches.append(
            f"(SELECT concept_id, 4 FROM warehouse_concept WHERE {' AND '.join(word_conditions)}{filters} "
            "LIMIT %(cap)s)"
        )
    ranked = (
        "WITH hits (concept_id, rank) AS (" + " UNION ALL ".join(branches) + "), "
        "best AS (SELECT concept_id, MIN(rank) AS rank FROM hits GROUP BY concept_id) "
        "SELECT c.concept_id, best.rank FROM best JOIN warehouse_concept c ON c.concept_id = best.concept_id "
        "ORDER BY best.rank, (c.standard_concept = 'S') DESC, similarity(c.concept_name, %(q)s) DESC, "
        "length(c.concept_name), c.concept_id LIMIT %(limit)s OFFSET %(offset)s"
    )
    return ranked, params


#: Settings of the search's own transaction. Each kind of match is capped with LIMIT, and PostgreSQL then
#: prefers a sequential scan that "stops after 500 matches" — which reads the whole table when the matches are
#: rare in the filtered domain (seconds on 5M concepts, see scripts/bench_vocabulary.py). The indexes always
#: answer these queries, so the search forbids the sequential scan for itself only.
SEARCH_SETTINGS = ("SET LOCAL enable_seqscan = off", "SET LOCAL pg_trgm.similarity_threshold = 0.45")

#: The nearest known word to a (misspelled) word of the query, through the trigram index of the word list.
NEAREST_WORD_SQL = (
    "SELECT word FROM warehouse_conceptword WHERE word %% %(w)s "
    "ORDER BY similarity(word, %(w)s) DESC, length(word), word LIMIT 1"
)
KNOWN_WORD_SQL = "SELECT 1 FROM warehouse_conceptword WHERE word = %(w)s"


def corrected_query(query: ConceptQuery, cursor: Any) -> ConceptQuery | None:
    """The query with each unknown word replaced by the nearest word of the vocabulary's names (a misspelling
    such as "diabetis"), or None when every word is known or nothing is near. Searching millions of names for
    similar strings is slow; the list of distinct words is short, so correcting first is fast at any size."""
    words = query.text.lower().split()
    changed = False
    for i, word in enumerate(words):
        if len(word) < MIN_WORD or not WORD_RE.fullmatch(word):
            continue
        cursor.execute(KNOWN_WORD_SQL, {"w": word})
        if cursor.fetchone():
            continue
        cursor.execute(NEAREST_WORD_SQL, {"w": word})
        row = cursor.fetchone()
        if row:
            words[i] = row[0]
            changed = True
    if not changed:
        return None
    return ConceptQuery(**{**query.__dict__, "text": " ".join(words)})


def search_ids_with_cursor(query: ConceptQuery, cursor: Any) -> list[int]:
    """The concept ids of one page of results, best first, through a PostgreSQL cursor inside a transaction
    (the portal's own, or the benchmark's connection to its generated vocabulary)."""
    for setting in SEARCH_SETTINGS:
        cursor.execute(setting)
    cursor.execute(*search_sql(query))
    ids = [row[0] for row in cursor.fetchall()]
    if len(ids) < query.limit and query.offset == 0:
        # Little spelled like the text: search again with its misspelled words corrected.
        corrected = corrected_query(query, cursor)
        if corrected is not None:
            cursor.execute(*search_sql(corrected))
            seen = set(ids)
            ids += [row[0] for row in cursor.fetchall() if row[0] not in seen][: query.limit - len(ids)]
    return ids


def _search_ids_postgresql(query: ConceptQuery) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        return search_ids_with_cursor(query, cursor)


def _search_ids_fallback(query: ConceptQuery) -> list[int]:
    """Any other database (the embedded demo portal's SQLite): the same ranks, computed in Python over LIKE
    matches. Fine for a demo vocabulary; PostgreSQL is what serves millions of concepts."""
    base = Concept.objects.all()
    if query.domain:
        base = base.filter(domain_id=query.domain)
    if query.vocabulary:
        base = base.filter(vocabulary_id=query.vocabulary)
    if query.standard in ("S", "C"):
        base = base.filter(standard_concept=query.standard)
    elif query.standard == "N":
        base = base.filter(standard_concept="")
    if not query.include_invalid:
        base = base.filter(invalid_reason="")
    cap = max(CANDIDATES, query.offset + query.limit)
    words = Q()
    for word in query.words:
        words &= Q(concept_name__icontains=word)
    matches = Q(concept_code__iexact=query.text) | Q(concept_name__istartswith=query.text)
    if query.words:
        matches |= words
    if query.as_id is not None:
        matches |= Q(concept_id=query.as_id)
    candidates = list(base.filter(matches)[: cap * 2])
    text = query.text.lower()

    def rank(c: Concept) -> tuple[Any, ...]:
        name = c.concept_name.lower()
        if query.as_id == c.concept_id:
            kind = 0
        elif c.concept_code.lower() == text:
            kind = 1
        elif name == text:
            kind = 2
        elif name.startswith(text):
            kind = 3
        else:
            kind = 4
        return (kind, c.standard_concept != "S", len(name), c.concept_id)

    candidates.sort(key=rank)
    return [c.concept_id for c in candidates[query.offset : query.offset + query.limit]]


def concept_search(query: ConceptQuery) -> list[Concept]:
    """Concepts matching ``query``, best first (see ``search_sql``), one page."""
    ids = _search_ids_postgresql(query) if connection.vendor == "postgresql" else _search_ids_fallback(query)
    found = Concept.objects.in_bulk(ids)
    return [found[i] for i in ids if i in found]


# ---------------------------------------------------------------------------------------------------------------
# One concept and its neighbourhood
# ---------------------------------------------------------------------------------------------------------------


def concept_get(concept_id: int) -> Concept | None:
    return Concept.objects.filter(concept_id=concept_id).first()


def concept_hierarchy(concept_id: int, *, limit: int = 200) -> dict[str, Any]:
    """Parents and children (one level, with their separation), the number of all descendants, and the
    concepts it maps to / is mapped from."""
    parents = ConceptAncestor.objects.filter(descendant_concept_id=concept_id, min_levels_of_separation=1)
    children = ConceptAncestor.objects.filter(ancestor_concept_id=concept_id, min_levels_of_separation=1)
    parent_levels = {a.ancestor_concept_id: a.min_levels_of_separation for a in parents[:limit]}
    child_levels = {a.descendant_concept_id: a.min_levels_of_separation for a in children[:limit]}
    descendants_total = ConceptAncestor.objects.filter(
        ancestor_concept_id=concept_id, min_levels_of_separation__gt=0
    ).count()
    relations = ConceptRelationship.objects.filter(
        Q(concept_id_1=concept_id) | Q(concept_id_2=concept_id), invalid_reason=""
    )
    maps_to: set[int] = set()
    mapped_from: set[int] = set()
    for r in relations:
        # Both directions are stored in real vocabularies; read either so a partial export still shows them.
        if r.concept_id_1 == concept_id:
            (maps_to if r.relationship_id == "Maps to" else mapped_from).add(r.concept_id_2)
        else:
            (mapped_from if r.relationship_id == "Maps to" else maps_to).add(r.concept_id_1)
    maps_to.discard(concept_id)
    mapped_from.discard(concept_id)
    concepts = Concept.objects.in_bulk(set(parent_levels) | set(child_levels) | maps_to | mapped_from)

    def listed(ids: Iterable[int], levels: dict[int, int] | None = None) -> list[dict[str, Any]]:
        out = []
        for cid in ids:
            if cid not in concepts:
                continue
            item = concept_as_dict(concepts[cid])
            if levels is not None:
                item["min_levels_of_separation"] = levels[cid]
            out.append(item)
        return sorted(out, key=lambda d: (d["concept_name"].lower(), d["concept_id"]))

    return {
        "ancestors": listed(parent_levels, parent_levels),
        "descendants": listed(child_levels, child_levels),
        "descendants_total": descendants_total,
        "maps_to": listed(maps_to),
        "mapped_from": listed(mapped_from),
    }


def concept_as_dict(concept: Concept) -> dict[str, Any]:
    """The public fields of a concept, named as in the CDM (the JSON contract of the search endpoints)."""
    return {
        "concept_id": concept.concept_id,
        "concept_name": concept.concept_name,
        "domain_id": concept.domain_id,
        "vocabulary_id": concept.vocabulary_id,
        "concept_class_id": concept.concept_class_id,
        "standard_concept": concept.standard_concept or None,
        "concept_code": concept.concept_code,
        "invalid_reason": concept.invalid_reason or None,
    }


def vocabulary_filters() -> dict[str, list[str]]:
    """Domains and vocabularies that have concepts, for the search filters."""
    return {
        "domains": sorted(Concept.objects.values_list("domain_id", flat=True).distinct()),
        "vocabularies": sorted(Concept.objects.values_list("vocabulary_id", flat=True).distinct()),
    }


# ---------------------------------------------------------------------------------------------------------------
# Concept set resolution (the compiler's rules, against the portal's copy)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetItem:
    concept_id: int
    is_excluded: bool = False
    include_descendants: bool = False
    include_mapped: bool = False


def concept_set_resolve(items: Iterable[SetItem]) -> list[int]:
    """The concept ids a concept set stands for, sorted, exactly as ``cohorts.compiler.codesets`` resolves
    it on a site: each item that exists in CONCEPT, its valid descendants (CONCEPT_ANCESTOR) when
    ``include_descendants``, the concepts that 'Maps to' any of those when ``include_mapped``; the excluded
    items expanded the same way are taken out."""
    items = list(items)
    ids = {i.concept_id for i in items}
    existing = set(Concept.objects.filter(concept_id__in=ids).values_list("concept_id", flat=True))
    with_descendants = {i.concept_id for i in items if i.include_descendants}
    descendants: dict[int, set[int]] = {}
    if with_descendants:
        pairs = ConceptAncestor.objects.filter(ancestor_concept_id__in=with_descendants).values_list(
            "ancestor_concept_id", "descendant_concept_id"
        )
        valid = set(
            Concept.objects.filter(
                concept_id__in=ConceptAncestor.objects.filter(ancestor_concept_id__in=with_descendants).values(
                    "descendant_concept_id"
                ),
                invalid_reason="",
            ).values_list("concept_id", flat=True)
        )
        for ancestor, descendant in pairs:
            if descendant in valid:
                descendants.setdefault(ancestor, set()).add(descendant)
    result: dict[bool, set[int]] = {False: set(), True: set()}
    to_map: dict[bool, set[int]] = {False: set(), True: set()}
    for item in items:
        expanded = {item.concept_id} & existing
        if item.include_descendants:
            expanded |= descendants.get(item.concept_id, set())
        result[item.is_excluded] |= expanded
        if item.include_mapped:
            to_map[item.is_excluded] |= expanded
    for excluded, targets in to_map.items():
        if targets:
            result[excluded] |= set(
                ConceptRelationship.objects.filter(
                    concept_id_2__in=targets, relationship_id="Maps to", invalid_reason=""
                ).values_list("concept_id_1", flat=True)
            )
    return sorted(result[False] - result[True])


def concept_counts_refresh_for_source(*, source_id: int) -> int:
    """What the site's worker runs: connect to the source (read only) and refresh its concept counts."""
    from warehouse.services import source_connect

    source = Source.objects.get(pk=source_id)
    with source_connect(source, read_only=True) as engine:
        return concept_counts_refresh(source=source, engine=engine)
