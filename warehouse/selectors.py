"""Reads of the warehouse app: what a source's warehouse holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from warehouse.engines import quote_ident
from warehouse.fingerprint import cdm_fingerprint
from warehouse.models import Source
from warehouse.services import source_connect
from warehouse.spark_catalog import schema_tables

#: The tables ``list_sources`` shows: enough to see at a glance that a site is loaded and roughly how big.
SUMMARY_TABLES = ("person", "observation_period", "condition_occurrence", "drug_exposure", "measurement")


def source_row_counts(*, source: Source, tables: Sequence[str] = SUMMARY_TABLES) -> dict[str, int]:
    """Rows per table in the source's CDM schema; a table that does not exist is left out.

    Raises ``WarehouseError`` when the warehouse cannot be reached.
    """
    schema = quote_ident(source.cdm_schema)
    counts: dict[str, int] = {}
    with source_connect(source, read_only=True) as engine:
        if engine.kind == "spark":
            # No information_schema on Spark: its catalog lists the schema (a missing schema has no tables).
            existing = set(schema_tables(engine, source.cdm_schema) or {})
        else:
            existing = {
                row[0]
                for row in engine.fetchall(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s",
                    {"schema": source.cdm_schema},
                )
            }
        present = [table for table in tables if table in existing]
        if present:
            # One statement for all tables: on Spark each statement costs a job.
            union = " UNION ALL ".join(
                f"SELECT {i} AS i, COUNT(*) AS n FROM {schema}.{quote_ident(table)}"  # noqa: S608 - quoted names
                for i, table in enumerate(present)
            )
            by_index = {int(i): int(n) for i, n in engine.fetchall(union)}
            counts = {table: by_index.get(i, 0) for i, table in enumerate(present)}
    return counts


def source_fingerprint(*, source: Source) -> str:
    """The fingerprint of the source's CDM now (``warehouse.fingerprint``), read on the warehouse. Compare with
    ``source.fingerprint`` to tell whether the portal's record is current. Raises ``WarehouseError``."""
    with source_connect(source, read_only=True) as engine:
        return cdm_fingerprint(engine, source)


def source_fingerprint_is_recent(source: Source) -> bool:
    """True when the site's worker confirmed the source's fingerprint within
    ``SOYANG_FINGERPRINT_MAX_AGE_SECONDS``: only then may a result cached under it be served."""
    checked = source.fingerprint_checked_at
    if checked is None:
        return False
    return timezone.now() - checked <= timedelta(seconds=int(settings.SOYANG_FINGERPRINT_MAX_AGE_SECONDS))
