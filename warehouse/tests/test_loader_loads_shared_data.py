"""The loader puts the shared OMOP data sets into both engines with exactly their row counts."""

from __future__ import annotations

from typing import Any

from warehouse.engines import quote_ident

GIBLEED_COUNTS = {
    "person": 2_694,
    "observation_period": 5_343,
    "visit_occurrence": 1_037,
    "condition_occurrence": 65_332,
    "drug_exposure": 67_707,
    "procedure_occurrence": 37_409,
    "measurement": 44_053,
    "observation": 1_477,
    "condition_era": 65_719,
    "drug_era": 52_508,
    "concept": 444,
    "concept_ancestor": 65_690,
}

SYNTHEA_COUNTS = {"person": 28, "measurement": 10_040, "concept_relationship": 266_588}


def _count(cdm: Any, table: str) -> int:
    row = cdm.engine.fetchone(f"SELECT COUNT(*) FROM {quote_ident(cdm.cdm_schema)}.{quote_ident(table)}")
    return int(row[0])


def test_gibleed_loads_as_cdm_53_with_every_row(cdm_gibleed: Any) -> None:
    assert cdm_gibleed.cdm_version == "5.3"
    assert {table: _count(cdm_gibleed, table) for table in GIBLEED_COUNTS} == GIBLEED_COUNTS


def test_synthea_loads_as_cdm_54_with_every_row(cdm_synthea: Any) -> None:
    assert cdm_synthea.cdm_version == "5.4"
    assert {table: _count(cdm_synthea, table) for table in SYNTHEA_COUNTS} == SYNTHEA_COUNTS


def test_empty_strings_in_not_null_vocabulary_text_load_as_empty_strings(cdm_gibleed: Any) -> None:
    schema = quote_ident(cdm_gibleed.cdm_schema)
    nulls = cdm_gibleed.engine.fetchone(
        f"SELECT COUNT(*) FROM {schema}.vocabulary WHERE vocabulary_name IS NULL OR vocabulary_reference IS NULL"
    )
    assert nulls == (0,)
    # ...while an empty nullable field is NULL (standard_concept of a non-standard concept).
    non_standard = cdm_gibleed.engine.fetchone(f"SELECT COUNT(*) FROM {schema}.concept WHERE standard_concept IS NULL")
    assert non_standard[0] > 0


def test_datetime_values_load_into_date_and_timestamp_columns(cdm_synthea: Any) -> None:
    schema = quote_ident(cdm_synthea.cdm_schema)
    row = cdm_synthea.engine.fetchone(
        f"SELECT MIN(condition_era_start_date), COUNT(*) FROM {schema}.condition_era "
        "WHERE condition_era_start_date IS NOT NULL"
    )
    assert row[1] == 469
    births = cdm_synthea.engine.fetchone(f"SELECT COUNT(birth_datetime) FROM {schema}.person")
    assert births == (28,)


def test_results_schema_exists_apart_from_the_cdm(cdm_gibleed: Any) -> None:
    # Other tests of the session write cohorts into it, so only the CDM's own tables must be absent.
    tables = cdm_gibleed.engine.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s",
        {"schema": cdm_gibleed.results_schema},
    )
    schemas = cdm_gibleed.engine.fetchall(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name = %(schema)s",
        {"schema": cdm_gibleed.results_schema},
    )
    assert not {"person", "observation_period", "concept", "soyang_load"} & {t for (t,) in tables}
    assert len(schemas) == 1
