"""Replacing the portal's vocabulary with the one of a source's vocabulary schema or of a folder of OMOP CSV files.

On PostgreSQL the rows go into staging tables swapped in at the end (``staging``); other databases (the embedded
demo portal's SQLite) empty the live tables and write the rows into them with the ORM.
"""

from __future__ import annotations

import csv
import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from audit.services import audit_record
from warehouse.engines import Engine, WarehouseError, quote_ident
from warehouse.loader import find_csv_files
from warehouse.models import Concept, ConceptAncestor, ConceptRelationship, ConceptWord, Domain, Source, Vocabulary
from warehouse.vocabulary.staging import load_lock, load_staged
from warehouse.vocabulary.tables import (
    BATCH_ROWS,
    PORTAL_TABLES,
    TABLES,
    TableInput,
    VocabularyError,
    built_rows,
    timed,
)
from warehouse.vocabulary.words import words_rebuild


@dataclass(frozen=True)
class VocabularyLoadReport:
    """Rows loaded per table, how long it took, and the seconds of each step (each table's copy, the word list,
    each index built after the copy, ANALYZE, the swap), which scripts/bench_vocabulary_load.py prints."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


#: Keyset order used to read each table from a source in batches (row-value comparison, both engines).
_KEYS = {
    "vocabulary": ("vocabulary_id",),
    "domain": ("domain_id",),
    "concept": ("concept_id",),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
}

#: How rows reach PostgreSQL: "copy" (the staged load, ``load_staged``) or "bulk_create" (the ORM's multi-row
#: INSERT into the emptied live tables, what other databases always use). Only scripts/bench_vocabulary_load.py
#: and the tests change it (and ``staging.REBUILD_INDEXES``), to measure the gain and to compare what each stores.
POSTGRESQL_WRITE = "copy"


# ---------------------------------------------------------------------------------------------------------------
# The in-place load: other databases, and the ORM reference on PostgreSQL
# ---------------------------------------------------------------------------------------------------------------


def _clear() -> None:
    if connection.vendor == "postgresql":
        # TRUNCATE holds the tables' ACCESS EXCLUSIVE lock until the commit: searches wait for the whole load.
        # Only the ORM reference takes this path on PostgreSQL; the portal's loads are staged.
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(PORTAL_TABLES)}")
        return
    for model in (ConceptAncestor, ConceptRelationship, Concept, Vocabulary, Domain, ConceptWord):
        model.objects.all().delete()


def _write_bulk_create(source: TableInput, table: str) -> int:
    model, build, columns = TABLES[table]
    written = 0
    batch: list[Any] = []
    for _position, values in built_rows(source, build):
        batch.append(model(**dict(zip(columns, values, strict=True))))
        if len(batch) >= BATCH_ROWS:
            model.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


def _load_in_place(tables: dict[str, TableInput], steps: dict[str, float]) -> dict[str, int]:
    """Empty the live tables and write the rows into them with the ORM: the embedded demo portal's SQLite (a
    small vocabulary, nobody searching during a load), and what the tests compare COPY with on PostgreSQL."""
    _clear()
    rows: dict[str, int] = {}
    for table, source in tables.items():
        with timed(steps, table):
            rows[table] = _write_bulk_create(source, table)
    with timed(steps, "concept_word"):
        rows["concept_word"] = words_rebuild()
    if connection.vendor == "postgresql":
        with timed(steps, "analyze"), connection.cursor() as cursor:
            cursor.execute("ANALYZE warehouse_concept")
            cursor.execute("ANALYZE warehouse_conceptword")
    return rows


def _load(tables: dict[str, TableInput], steps: dict[str, float]) -> dict[str, int]:
    """Replace the vocabulary tables with ``tables``' rows (a savepoint of the caller's transaction, which holds
    the swapped tables' exclusive lock until it ends: commit soon); ``steps`` receives the seconds of each step."""
    with transaction.atomic():
        if connection.vendor != "postgresql":
            return _load_in_place(tables, steps)
        with connection.cursor() as cursor:
            load_lock(cursor)
        if POSTGRESQL_WRITE == "copy":
            return load_staged(tables, steps)
        return _load_in_place(tables, steps)


def _rows_from_engine(engine: Engine, schema: str, table: str) -> Iterator[tuple[int, dict[str, Any]]]:
    _model, _build, columns = TABLES[table]
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
        table: TableInput(rows=_rows_from_engine(engine, schema, table), label=f"{schema}.{table}", unit="row")
        for table in TABLES
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
        if table not in TABLES:
            continue
        missing = set(TABLES[table][2]) - {"standard_concept", "invalid_reason"} - set(csv_file.columns)
        if missing:
            raise VocabularyError(f"{csv_file.path.name}: missing columns {', '.join(sorted(missing))}")
    tables = {
        table: TableInput(
            rows=_rows_from_file(files[table].path, files[table].delimiter), label=files[table].path.name, unit="line"
        )
        for table in TABLES
        if table in files
    }
    return _load(tables, steps)
