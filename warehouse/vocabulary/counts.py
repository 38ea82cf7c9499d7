"""Records and distinct persons per standard concept at each site: computed on the site's CDM by its worker,
stored in the portal as aggregates only, never rows.

Each count comes with its cell key (the cell-key method, ``disclosure.cellkey``), computed in the query that counts
it from the site's record-key table, whose SQL name the caller passes (this app does not know how the keys are
made: ``cohorts.concept_sets.counts`` keys the site's persons and calls here):

- the person count's key is the sum of the record keys of the concept's distinct persons, modulo 256, as for any
  count of persons;
- the record count's key is the sum over the records of their person's key, i.e. the sum over the persons of
  (records of that person × key), modulo 256: a set of records is a cell of its own, and the same records always
  give the same key, while one record more or less shifts it.

A refresh whose persons are not all keyed stores nothing (``UnkeyedPersons``): a count with a wrong key must not
be stored, as the portal would release it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from warehouse.engines import Engine, WarehouseError, quote_ident
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

#: Cell keys are sums modulo this (``disclosure.ptable.KEYS``; warehouse does not import disclosure).
KEY_MODULUS = 256


class UnkeyedPersons(WarehouseError):
    """Some persons counted have no record key (the CDM was reloaded after the keys were made): nothing stored."""

    def __init__(self, persons: int) -> None:
        super().__init__(f"{persons} or more persons counted have no record key; the concept counts were not stored.")
        self.persons = persons


def concept_counts_sql(cdm_schema: str, record_keys: str) -> str:
    """Per standard concept over the domain tables of one CDM: records, distinct persons, the cell key of each
    (see the module) and the persons without a record key.

    ``record_keys``: the SQL name of the site's ``(person_id, record_key)`` table (quoted identifiers). One row per
    concept and person first, so that a person adds their key once to the person count and once per record to the
    record count. The same SQL runs on PostgreSQL and DuckDB.
    """
    schema = quote_ident(cdm_schema)
    parts = " UNION ALL ".join(
        f"SELECT {quote_ident(column)} AS concept_id, person_id FROM {schema}.{quote_ident(table)}"
        for table, column in COUNTED_COLUMNS
    )
    key = "COALESCE(k.record_key, 0)"
    # Quoted identifiers only; no value is spliced in.
    return (
        f"SELECT e.concept_id, SUM(e.records), COUNT(*), MOD(SUM(e.records * {key}), {KEY_MODULUS}), "  # noqa: S608
        f"MOD(SUM({key}), {KEY_MODULUS}), SUM(CASE WHEN k.record_key IS NULL THEN 1 ELSE 0 END) "
        f"FROM (SELECT concept_id, person_id, COUNT(*) AS records FROM ({parts}) AS events "
        "WHERE concept_id IS NOT NULL AND concept_id <> 0 GROUP BY concept_id, person_id) AS e "
        f"LEFT JOIN {record_keys} AS k ON k.person_id = e.person_id GROUP BY e.concept_id"
    )


@transaction.atomic
def concept_counts_refresh(*, source: Source, engine: Engine, record_keys: str, actor: Any = None) -> int:
    """Replace ``source``'s concept counts with fresh ones computed on its CDM, each with its cell keys; returns the
    concepts counted. ``record_keys``: the SQL name of the site's record-key table, which the caller has filled.

    Raises ``UnkeyedPersons`` (the stored counts unchanged) when some counted person has no record key.
    """
    previous = engine.statement_timeout_seconds
    # A full scan of every domain table: longer than a cohort query may take on a large warehouse.
    engine.set_statement_timeout(0)
    try:
        rows = engine.fetchall(concept_counts_sql(source.cdm_schema, record_keys))
    finally:
        engine.set_statement_timeout(previous)
    unkeyed = max((int(row[5] or 0) for row in rows), default=0)
    if unkeyed:
        raise UnkeyedPersons(unkeyed)
    now = timezone.now()
    ConceptCount.objects.filter(source=source).delete()
    ConceptCount.objects.bulk_create(
        [
            ConceptCount(
                source=source,
                concept_id=int(cid),
                record_count=int(records),
                person_count=int(persons),
                record_key=int(record_key),
                person_key=int(person_key),
                computed_at=now,
            )
            for cid, records, persons, record_key, person_key, _ in rows
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


def sources_counted(*, sources: Iterable[Source]) -> set[int]:
    """The ids of the sources that have counted their concepts (any stored count): at those, a concept without a
    stored count has no record. One index probe per source."""
    return {s.pk for s in sources if ConceptCount.objects.filter(source=s).exists()}
