"""The portal's vocabulary tables as a load writes them: which tables, in which order, how one source row becomes a
row of each (the one validation of the input, whichever way the rows are written), and the error a load raises."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from warehouse.engines import WarehouseError
from warehouse.models import Concept, ConceptAncestor, ConceptRelationship, Domain, Vocabulary

#: Relationships kept from CONCEPT_RELATIONSHIP: the ones concept sets resolve through and the concept page shows.
KEPT_RELATIONSHIPS = ("Maps to", "Mapped from")
#: Rows read from a source, written with the ORM or serialized for COPY at a time: memory stays bounded.
BATCH_ROWS = 10_000


class VocabularyError(WarehouseError):
    """The vocabulary cannot be loaded or searched as asked; the message says why. Nothing was changed."""


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
# order of TABLES; None for a row that is not kept. They are the one validation of the input whatever writes
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
TABLES: dict[str, tuple[type, Any, tuple[str, ...]]] = {
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
PORTAL_TABLES = (
    "warehouse_concept",
    "warehouse_conceptancestor",
    "warehouse_conceptrelationship",
    "warehouse_vocabulary",
    "warehouse_domain",
    "warehouse_conceptword",
)


@dataclass(frozen=True)
class TableInput:
    """The rows of one table, each with its position (file line, or row number in a source's table), and how a
    message names the place: ``CONCEPT.csv, line 12`` or ``vocab.concept, row 12``."""

    rows: Iterable[tuple[int, dict[str, Any]]]
    label: str
    unit: str

    def at(self, position: int) -> str:
        return f"{self.label}, {self.unit} {position}"


def built_rows(source: TableInput, build: Any) -> Iterator[tuple[int, tuple[Any, ...]]]:
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
def timed(steps: dict[str, float], name: str) -> Iterator[None]:
    """Record in ``steps[name]`` the seconds the block took (when it completes: a failed load reports no steps)."""
    started = time.monotonic()
    yield
    steps[name] = time.monotonic() - started
