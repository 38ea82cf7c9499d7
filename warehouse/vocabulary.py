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
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg2
from django.db import IntegrityError, connection, transaction
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
    each index built again, ANALYZE), which scripts/bench_vocabulary_load.py prints."""

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

#: The portal tables a load replaces (PostgreSQL names).
_PORTAL_TABLES = (
    "warehouse_concept",
    "warehouse_conceptancestor",
    "warehouse_conceptrelationship",
    "warehouse_vocabulary",
    "warehouse_domain",
    "warehouse_conceptword",
)

#: How rows reach PostgreSQL: "copy" (COPY FROM STDIN) or "bulk_create" (the ORM's multi-row INSERT, what
#: other databases always use). Only scripts/bench_vocabulary_load.py changes these two, to measure the gain.
POSTGRESQL_WRITE = "copy"
#: PostgreSQL: drop the secondary indexes and unique constraints during the load, build them again before the
#: commit (``_secondary_indexes_drop``).
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


def _clear() -> None:
    if connection.vendor == "postgresql":
        # TRUNCATE is transactional in PostgreSQL: a failed load leaves the old copy in place. It also takes
        # the tables' ACCESS EXCLUSIVE lock until the commit: searches wait for the load to end, they are not
        # served from the old copy meanwhile.
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(_PORTAL_TABLES)}")
        return
    for model in (ConceptAncestor, ConceptRelationship, Concept, Vocabulary, Domain, ConceptWord):
        model.objects.all().delete()


def _write(source: _Input, table: str) -> int:
    if connection.vendor == "postgresql" and POSTGRESQL_WRITE == "copy":
        return _write_copy(source, table)
    return _write_bulk_create(source, table)


def _write_bulk_create(source: _Input, table: str) -> int:
    model, build, columns = _TABLES[table]
    written = 0
    batch: list[Any] = []
    for position, row in source.rows:
        try:
            values = build(row)
        except (KeyError, ValueError) as exc:
            raise VocabularyError(f"{source.at(position)}: bad row ({exc})") from exc
        if values is None:
            continue
        batch.append(model(**dict(zip(columns, values, strict=True))))
        if len(batch) >= BATCH_ROWS:
            model.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


#: Rows per COPY statement. Each statement streams its rows BATCH_ROWS at a time while PostgreSQL inserts the
#: ones already sent (the client's parsing and the server's inserting overlap, on two processes); a value the
#: server refuses is traced back to its file line through the statement's positions (8 bytes a row).
COPY_ROWS = 1_000_000

#: COPY's text format: a backslash, TAB, newline or carriage return inside a value is written as an escape.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_LINE_RE = re.compile(r"COPY \S+, line (\d+)")


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
    """What one COPY statement reads: the next rows of ``source``, built and serialized BATCH_ROWS at a time
    (memory stays bounded whatever the size of the file), at most COPY_ROWS of them."""

    def __init__(self, rows: Iterator[tuple[int, dict[str, Any]]], build: Any, source: _Input) -> None:
        self.positions = array("q")
        self.exhausted = False
        #: An error of ours raised inside ``read`` (psycopg2 only reports "error in .read() call").
        self.error: Exception | None = None
        self._rows = rows
        self._build = build
        self._source = source
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
        build, positions = self._build, self.positions
        room = min(BATCH_ROWS, COPY_ROWS - len(positions))
        for position, row in self._rows:
            try:
                values = build(row)
            except (KeyError, ValueError) as exc:
                raise VocabularyError(f"{self._source.at(position)}: bad row ({exc})") from exc
            if values is None:
                continue
            lines.append(_copy_line(values))
            positions.append(position)
            if len(lines) >= room:
                break
        else:
            self.exhausted = True
        return "".join(lines).encode("utf-8")


def _write_copy(source: _Input, table: str) -> int:
    """COPY the built rows into ``table``, COPY_ROWS rows per statement."""
    model, build, columns = _TABLES[table]
    sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    rows = iter(source.rows)
    written = 0
    with connection.cursor() as cursor:
        while True:
            stream = _CopyStream(rows, build, source)
            try:
                cursor.copy_expert(sql, stream, size=1 << 20)
            except psycopg2.Error as exc:
                # The transaction is aborted: raising rolls the whole load back, the previous vocabulary stays.
                if stream.error is not None:
                    raise stream.error from None
                if isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError):
                    raise VocabularyError(_copy_error(exc, stream.positions, source)) from exc
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


#: Every index of the portal's vocabulary tables but the primary keys (they check the ids as the rows arrive,
#: so a duplicate id is reported with its line): (table, index, unique constraint it backs or NULL, definition
#: of the constraint or of the index), names quoted.
_SECONDARY_INDEXES_SQL = (
    "SELECT x.indrelid::regclass::text, x.indexrelid::regclass::text, quote_ident(k.conname), "
    "COALESCE(pg_get_constraintdef(k.oid), pg_get_indexdef(x.indexrelid)) "
    "FROM pg_index x LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid "
    "WHERE x.indrelid IN (SELECT to_regclass(t) FROM unnest(%(tables)s) AS t) AND NOT x.indisprimary "
    "ORDER BY 1, 2"
)


@dataclass(frozen=True)
class _Index:
    table: str
    name: str
    constraint: str | None
    definition: str


def _secondary_indexes_drop() -> list[_Index]:
    """Drop the secondary indexes (and unique constraints) of the just truncated vocabulary tables; return what
    creates them again. Building an index once over the loaded rows is much faster than updating it row by
    row: the trigram GIN indexes most of all, and the unique ancestry pair, whose inserts land all over a
    b-tree of tens of millions of entries (see docs/performance.md, "Loading a vocabulary"). TRUNCATE already
    holds the tables' exclusive lock, and DDL is transactional: no reader ever sees a table without its
    indexes, and a failed load gets them back with the old rows."""
    with connection.cursor() as cursor:
        cursor.execute(_SECONDARY_INDEXES_SQL, {"tables": list(_PORTAL_TABLES)})
        found = [_Index(*row) for row in cursor.fetchall()]
        for index in found:
            if index.constraint:
                cursor.execute(f"ALTER TABLE {index.table} DROP CONSTRAINT {index.constraint}")
            else:
                cursor.execute(f"DROP INDEX {index.name}")
    return found


#: Memory for building the indexes again, for this transaction only and only ever raised: the trigram GIN
#: index on a million names built in 13-15 s with it against 15-25 s with PostgreSQL's default 64 MB.
INDEX_BUILD_MEMORY_KB = 256 * 1024


def _secondary_indexes_create(indexes: list[_Index], labels: dict[str, str], steps: dict[str, float]) -> None:
    """Build the dropped indexes again, same names and definitions (``steps`` receives the seconds of each). A
    duplicate the unique constraint finds now is reported with the file (``labels``: portal table → file name)
    and the duplicated key, not its line."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'")
        if cursor.fetchone()[0] < INDEX_BUILD_MEMORY_KB:
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY_KB}kB'")
        for index in indexes:
            started = time.monotonic()
            if not index.constraint:
                cursor.execute(index.definition)
            else:
                try:
                    cursor.execute(f"ALTER TABLE {index.table} ADD CONSTRAINT {index.constraint} {index.definition}")
                except IntegrityError as exc:
                    diag = getattr(exc.__cause__, "diag", None)
                    detail = f" ({diag.message_detail})" if diag is not None and diag.message_detail else ""
                    raise VocabularyError(
                        f"{labels.get(index.table, index.table)}: {str(exc).splitlines()[0]}{detail}"
                    ) from exc
            steps[f"index {index.name}"] = time.monotonic() - started


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


def _load(tables: dict[str, _Input], steps: dict[str, float]) -> dict[str, int]:
    """Replace the vocabulary tables with ``tables``' rows, inside the caller's transaction; ``steps`` receives
    the seconds of each step. On PostgreSQL the rows go in with COPY into tables without their secondary
    indexes, which are built again once at the end."""
    _clear()
    postgresql = connection.vendor == "postgresql"
    rebuilt = _secondary_indexes_drop() if postgresql and REBUILD_INDEXES else []
    rows: dict[str, int] = {}
    for table, source in tables.items():
        started = time.monotonic()
        rows[table] = _write(source, table)
        steps[table] = time.monotonic() - started
    started = time.monotonic()
    rows["concept_word"] = words_rebuild()
    steps["concept_word"] = time.monotonic() - started
    if rebuilt:
        started = time.monotonic()
        labels = {_TABLES[table][0]._meta.db_table: source.label for table, source in tables.items()}
        _secondary_indexes_create(rebuilt, labels, steps)
        steps["indexes"] = time.monotonic() - started
    if postgresql:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE warehouse_concept")
            cursor.execute("ANALYZE warehouse_conceptword")
        steps["analyze"] = time.monotonic() - started
    return rows


WORD_RE = re.compile(r"[a-z0-9]+")
MIN_WORD = 3


WORDS_INSERT_SQL = (
    "INSERT INTO warehouse_conceptword (word) SELECT DISTINCT w FROM warehouse_concept, "
    "regexp_split_to_table(lower(concept_name), '[^a-z0-9]+') AS w WHERE length(w) BETWEEN %(min)s AND 100"
)


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
    """Replace the portal's vocabulary with the one in ``source``'s vocabulary schema (one transaction)."""
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
    then."""
    started = time.monotonic()
    steps: dict[str, float] = {}
    rows = _copy_from_directory(Path(directory), steps)
    audit_record(action="vocabulary_load", actor=actor, detail={"rows": rows, "directory": str(directory)})
    return VocabularyLoadReport(rows=rows, seconds=time.monotonic() - started, steps=steps)


def vocabulary_copy_from_directory(*, directory: Path) -> dict[str, int]:
    """The copy itself, without its transaction and audit event (the service above adds both): for callers
    that manage their own, such as test fixtures shared by a module."""
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
    """The concept ids a concept set stands for, sorted, exactly as ``cohorts.compiler.concept_sets`` resolves
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
