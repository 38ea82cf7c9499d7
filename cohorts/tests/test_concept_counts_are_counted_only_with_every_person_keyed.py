"""A site counts concepts only with every counted person keyed: persons added since the keys were made (a reload
of the CDM) are keyed and the site counts again, once; records of persons the site cannot key (not in its person
table) refuse the whole refresh and leave the counts there were. GiBleed on a private DuckDB file, so that the
tests may change its tables.
"""

from __future__ import annotations

from typing import Any

import pytest

from cohorts.concept_sets.counts import concept_counts_refresh_at_site
from disclosure.cellkey import record_key
from disclosure.record_keys import RecordKeyError, record_key_secret, record_key_table
from warehouse.models import ConceptCount
from worker.tests.conftest import cdm_gibleed_duckdb_private  # noqa: F401 (fixture)
from worker.tests.helpers import make_source

pytestmark = pytest.mark.django_db

GI_BLEED = 192671


def _gi_bleed_persons(cdm: Any) -> list[int]:
    engine = cdm.connect()
    try:
        rows = engine.fetchall(
            "SELECT DISTINCT person_id FROM gibleed.condition_occurrence WHERE condition_concept_id = %(id)s "
            "ORDER BY person_id",
            {"id": GI_BLEED},
        )
    finally:
        engine.close()
    return [int(row[0]) for row in rows]


def _change(cdm: Any, sql: str) -> None:
    engine = cdm.connect()
    try:
        engine.execute(sql)
    finally:
        engine.close()


def test_persons_without_a_key_are_keyed_and_the_site_counts_again(
    cdm_gibleed_duckdb_private: Any,  # noqa: F811
) -> None:
    cdm = cdm_gibleed_duckdb_private
    source = make_source(cdm)
    concept_counts_refresh_at_site(source_id=source.pk)
    persons = _gi_bleed_persons(cdm)
    # As after a reload of the CDM with three new persons: their keys are missing.
    _change(
        cdm,
        f"DELETE FROM {record_key_table('gibleed_results', source.key)} "  # noqa: S608
        f"WHERE person_id IN ({persons[0]}, {persons[1]}, {persons[2]})",
    )

    assert concept_counts_refresh_at_site(source_id=source.pk) > 100
    secret = record_key_secret(source.key)
    stored = ConceptCount.objects.get(source=source, concept_id=GI_BLEED)
    assert (stored.person_count, stored.person_key) == (479, sum(record_key(secret, p) for p in persons) % 256)
    assert stored.record_key == stored.person_key  # one record per person
    engine = cdm.connect()
    try:
        keyed = engine.fetchone(f"SELECT COUNT(*) FROM {record_key_table('gibleed_results', source.key)}")  # noqa: S608
        everybody = engine.fetchone("SELECT COUNT(*) FROM gibleed.person")
    finally:
        engine.close()
    assert keyed == everybody


def test_records_of_a_person_the_site_cannot_key_refuse_the_counts_and_keep_the_old_ones(
    cdm_gibleed_duckdb_private: Any,  # noqa: F811
) -> None:
    cdm = cdm_gibleed_duckdb_private
    source = make_source(cdm)
    concept_counts_refresh_at_site(source_id=source.pk)
    before = list(ConceptCount.objects.filter(source=source).order_by("concept_id").values())
    # A record of a person missing from the person table: no key can be made for them.
    _change(
        cdm,
        "INSERT INTO gibleed.condition_occurrence SELECT * REPLACE (999999999 AS person_id, "
        "999999999 AS condition_occurrence_id) FROM gibleed.condition_occurrence "
        f"WHERE condition_concept_id = {GI_BLEED} LIMIT 1",
    )

    with pytest.raises(RecordKeyError, match="1 or more persons counted have no record key"):
        concept_counts_refresh_at_site(source_id=source.pk)
    assert list(ConceptCount.objects.filter(source=source).order_by("concept_id").values()) == before
