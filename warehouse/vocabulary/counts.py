"""Records and distinct persons per standard concept at each site: computed on the site's CDM by its worker,
stored in the portal as aggregates only, never rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from warehouse.engines import Engine, quote_ident
from warehouse.models import ConceptCount, Source
from warehouse.vocabulary.tables import BATCH_ROWS

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


def concept_counts_refresh_for_source(*, source_id: int) -> int:
    """What the site's worker runs: connect to the source (read only) and refresh its concept counts."""
    from warehouse.services import source_connect

    source = Source.objects.get(pk=source_id)
    with source_connect(source, read_only=True) as engine:
        return concept_counts_refresh(source=source, engine=engine)
