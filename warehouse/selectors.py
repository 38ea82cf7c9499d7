"""Reads of the warehouse app: what a source's warehouse holds."""

from __future__ import annotations

from collections.abc import Sequence

from warehouse.engines import WarehouseError, quote_ident
from warehouse.loader import LOAD_TABLE
from warehouse.models import Source
from warehouse.services import source_connect

#: The tables ``list_sources`` shows: enough to see at a glance that a site is loaded and roughly how big.
SUMMARY_TABLES = ("person", "observation_period", "condition_occurrence", "drug_exposure", "measurement")


def source_row_counts(*, source: Source, tables: Sequence[str] = SUMMARY_TABLES) -> dict[str, int]:
    """Rows per table in the source's CDM schema; a table that does not exist is left out.

    Raises ``WarehouseError`` when the warehouse cannot be reached.
    """
    schema = quote_ident(source.cdm_schema)
    counts: dict[str, int] = {}
    with source_connect(source, read_only=True) as engine:
        existing = {
            row[0]
            for row in engine.fetchall(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s",
                {"schema": source.cdm_schema},
            )
        }
        for table in tables:
            if table in existing:
                row = engine.fetchone(f"SELECT COUNT(*) FROM {schema}.{quote_ident(table)}")
                counts[table] = int(row[0]) if row else 0
    return counts


def source_fingerprint(*, source: Source) -> str | None:
    """The fingerprint of the data in the warehouse now (``<cdm>.soyang_load``), or None when it was not loaded
    by Soyang. Compare with ``source.fingerprint`` to tell whether the portal's record is current."""
    with source_connect(source, read_only=True) as engine:
        try:
            row = engine.fetchone(f"SELECT fingerprint FROM {quote_ident(source.cdm_schema)}.{quote_ident(LOAD_TABLE)}")
        except WarehouseError:
            exists = engine.fetchone(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %(s)s AND table_name = %(t)s",
                {"s": source.cdm_schema, "t": LOAD_TABLE},
            )
            if exists:
                raise
            return None
    return str(row[0]) if row else None
