"""The physical design the cohort engine relies on: covering indexes and vacuumed tables on PostgreSQL, event
tables stored in concept order on DuckDB, for every load and for scaled benchmark schemas."""

from __future__ import annotations

from typing import Any

from warehouse.engines import quote_ident
from warehouse.omop_ddl import cluster_sql, index_names, index_sql
from warehouse.scaling import scale_cdm


def test_postgresql_concept_indexes_carry_the_columns_criteria_read() -> None:
    statements = index_sql("postgresql", "cdm", "5.4")
    drug = next(s for s in statements if '"ix_drug_exposure_concept"' in s)
    assert '("drug_concept_id", "person_id", "drug_exposure_start_date")' in drug
    assert 'INCLUDE ("drug_exposure_id", "drug_exposure_end_date", "days_supply", "visit_occurrence_id")' in drug
    # procedure_end_date exists in v5.4 only: a v5.3 index leaves it out rather than failing.
    assert '"procedure_end_date"' in next(s for s in statements if '"ix_procedure_occurrence_concept"' in s)
    v53 = next(s for s in index_sql("postgresql", "cdm", "5.3") if '"ix_procedure_occurrence_concept"' in s)
    assert '"procedure_end_date"' not in v53
    assert {"ix_condition_occurrence_source_concept", "ix_drug_exposure_source_concept"} <= index_names(
        "postgresql", "5.4"
    )


def test_duckdb_gets_concept_order_instead_of_event_indexes() -> None:
    assert not any("condition_occurrence" in s for s in index_sql("duckdb", "cdm", "5.4"))
    loaded = ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date"]
    columns = {"condition_occurrence": loaded}
    assert cluster_sql("duckdb", "cdm", columns) == [
        'CREATE OR REPLACE TABLE "cdm"."condition_occurrence" AS SELECT * FROM "cdm"."condition_occurrence" '
        'ORDER BY "condition_concept_id", "person_id", "condition_start_date"'
    ]
    assert cluster_sql("postgresql", "cdm", columns) == []


def _concepts_in_storage_order(engine: Any, schema: str) -> list[int]:
    return [
        int(concept)
        for (concept,) in engine.fetchall(
            f"SELECT condition_concept_id FROM {quote_ident(schema)}.condition_occurrence ORDER BY rowid", None
        )
    ]


def test_a_loaded_cdm_is_ready_for_index_only_scans_on_postgresql(cdm_gibleed_pg: Any) -> None:
    engine = cdm_gibleed_pg.engine
    schema = cdm_gibleed_pg.cdm_schema
    present = {
        name for (name,) in engine.fetchall("SELECT indexname FROM pg_indexes WHERE schemaname = %(s)s", {"s": schema})
    }
    assert index_names("postgresql", cdm_gibleed_pg.cdm_version) <= present
    # VACUUM after the load set the visibility map: every page of the table is all-visible.
    pages, visible = engine.fetchone(
        "SELECT relpages, relallvisible FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(s)s AND c.relname = 'condition_occurrence'",
        {"s": schema},
    )
    assert pages > 0 and visible == pages
    with engine.transaction():
        engine.execute("SET LOCAL enable_seqscan = off")
        engine.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(
            row[0]
            for row in engine.fetchall(
                f"EXPLAIN (ANALYZE, COSTS OFF) SELECT person_id, condition_start_date, condition_end_date, "  # noqa: S608
                f"condition_occurrence_id FROM {quote_ident(schema)}.condition_occurrence "
                "WHERE condition_concept_id = 192671",
                None,
            )
        )
    assert "Index Only Scan using ix_condition_occurrence_concept" in plan
    assert "Heap Fetches: 0" in plan


def test_a_loaded_cdm_stores_events_in_concept_order_on_duckdb(cdm_gibleed_duckdb: Any) -> None:
    concepts = _concepts_in_storage_order(cdm_gibleed_duckdb.engine, cdm_gibleed_duckdb.cdm_schema)
    assert len(concepts) > 1000 and concepts == sorted(concepts)


def test_a_scaled_cdm_keeps_the_physical_design(cdm_gibleed: Any) -> None:
    engine = cdm_gibleed.engine
    target = f"{cdm_gibleed.cdm_schema}_x2_design"
    try:
        scale_cdm(engine, source_schema=cdm_gibleed.cdm_schema, target_schema=target, factor=2)
        if engine.kind == "postgresql":
            present = {
                name
                for (name,) in engine.fetchall(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %(s)s", {"s": target}
                )
            }
            assert index_names("postgresql", cdm_gibleed.cdm_version) <= present
            pages, visible = engine.fetchone(
                "SELECT relpages, relallvisible FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %(s)s AND c.relname = 'drug_exposure'",
                {"s": target},
            )
            assert pages > 0 and visible == pages
        else:
            concepts = _concepts_in_storage_order(engine, target)
            assert concepts == sorted(concepts)
    finally:
        engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(target)} CASCADE", None)
