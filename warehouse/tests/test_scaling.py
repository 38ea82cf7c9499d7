"""GiBleed scaled x2: twice the persons and exactly twice every event, ids disjoint, indexes rebuilt, on every
engine (Spark's 10M-person benchmark warehouse is the 1M one cloned this way)."""

from __future__ import annotations

from typing import Any

from warehouse.engines import quote_ident
from warehouse.scaling import scale_cdm

#: Person-level tables of GiBleed whose row counts must double.
EVENT_TABLES = (
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "measurement",
    "observation",
    "condition_era",
    "drug_era",
)


def count(engine: Any, schema: str, table: str) -> int:
    return int(engine.fetchone(f"SELECT COUNT(*) FROM {quote_ident(schema)}.{quote_ident(table)}", None)[0])


def test_scaling_gibleed_by_two_doubles_persons_and_every_event(cdm_gibleed: Any) -> None:
    _scale_by_two_and_check(cdm_gibleed.engine, cdm_gibleed.cdm_schema)


def test_scaling_gibleed_by_two_on_spark(cdm_gibleed_spark: Any) -> None:
    _scale_by_two_and_check(cdm_gibleed_spark.engine, cdm_gibleed_spark.cdm_schema)


def _scale_by_two_and_check(engine: Any, source: str) -> None:
    target = f"{source}_x2_test"
    try:
        report = scale_cdm(engine, source_schema=source, target_schema=target, factor=2)
        assert report.persons == 5388
        for table in EVENT_TABLES:
            assert count(engine, target, table) == 2 * count(engine, source, table), table
        # Vocabulary is copied once, not cloned.
        assert count(engine, target, "concept") == count(engine, source, "concept")
        assert count(engine, target, "concept_ancestor") == count(engine, source, "concept_ancestor")
        # Ids stay unique after the shift, and references stay inside their clone.
        distinct = engine.fetchone(
            f"SELECT COUNT(DISTINCT condition_occurrence_id), COUNT(DISTINCT person_id) "
            f"FROM {quote_ident(target)}.condition_occurrence",
            None,
        )
        assert int(distinct[0]) == 2 * count(engine, source, "condition_occurrence")
        orphans = engine.fetchone(
            f"SELECT COUNT(*) FROM {quote_ident(target)}.condition_occurrence co "
            f"JOIN {quote_ident(target)}.visit_occurrence vo ON vo.visit_occurrence_id = co.visit_occurrence_id "
            "WHERE vo.person_id <> co.person_id",
            None,
        )
        assert int(orphans[0]) == 0
    finally:
        engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(target)} CASCADE", None)
