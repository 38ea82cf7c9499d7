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
