"""The synthetic OMOP generator: reproducible, closed over its vocabulary, epidemiologically sensible, loadable."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from warehouse.synthetic import generator, parallel, vocabulary
from warehouse.synthetic.synthesis import write_cdm
from warehouse.synthetic.writer import CDM_TABLES, file_checksums

PERSONS = 1_500


@pytest.fixture(scope="module")
def cdm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic_cdm")
    write_cdm(directory, persons=PERSONS, seed=7, chunk_size=500)
    return directory


@pytest.fixture(scope="module")
def cdm(cdm_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in CDM_TABLES:
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_csv('{cdm_dir / (table + '.csv')}', header=true, "
            "auto_detect=true, sample_size=-1)"
        )
    return con


def test_same_seed_writes_byte_identical_files(cdm_dir: Path, tmp_path: Path) -> None:
    write_cdm(tmp_path / "again", persons=PERSONS, seed=7, chunk_size=500)
    assert file_checksums(tmp_path / "again") == file_checksums(cdm_dir)


def test_output_does_not_depend_on_the_number_of_processes(cdm_dir: Path, tmp_path: Path) -> None:
    write_cdm(tmp_path / "one", persons=PERSONS, seed=7, chunk_size=500, jobs=1)
    write_cdm(tmp_path / "two", persons=PERSONS, seed=7, chunk_size=500, jobs=2)
    one = file_checksums(tmp_path / "one")
    assert one == file_checksums(tmp_path / "two")
    assert one == file_checksums(cdm_dir)
    assert not (tmp_path / "two" / ".parts").exists()


def test_ids_are_dense_across_chunks(cdm: duckdb.DuckDBPyConnection) -> None:
    for table in ("visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "condition_era",
                  "drug_era", "person"):  # fmt: skip
        key = "person_id" if table == "person" else f"{table}_id"
        low, high, rows, distinct = cdm.execute(
            f"SELECT min({key}), max({key}), count(*), count(DISTINCT {key}) FROM {table}"
        ).fetchone()
        assert (low, high, distinct) == (1, rows, rows), table


def test_different_seed_writes_different_events(tmp_path: Path) -> None:
    write_cdm(tmp_path / "a", persons=300, seed=1)
    write_cdm(tmp_path / "b", persons=300, seed=2)
    a, b = file_checksums(tmp_path / "a"), file_checksums(tmp_path / "b")
    assert a["concept.csv"] == b["concept.csv"]
    assert a["person.csv"] != b["person.csv"]
    assert a["measurement.csv"] != b["measurement.csv"]


def test_headers_are_the_cdm_v54_columns(cdm_dir: Path) -> None:
    for table, columns in CDM_TABLES.items():
        header = (cdm_dir / f"{table}.csv").open(encoding="utf-8").readline().strip()
        assert header.split(",") == [name for name, _kind in columns]


def test_vocabulary_has_at_least_300_standard_concepts() -> None:
    standard = [c for c in vocabulary.concepts().values() if c.standard_concept == "S"]
    assert len(standard) >= 300
    domains = {c.domain_id for c in standard}
    assert {
        "Condition",
        "Drug",
        "Measurement",
        "Procedure",
        "Visit",
        "Gender",
        "Race",
        "Unit",
        "Type Concept",
    } <= domains


def test_every_concept_used_by_the_events_is_in_concept(cdm: duckdb.DuckDBPyConnection) -> None:
    concept_columns = [
        (table, name) for table, columns in CDM_TABLES.items()
        if table not in {"concept", "concept_ancestor", "concept_relationship", "vocabulary", "domain",
                         "concept_class", "relationship", "cdm_source"}
        for name, _kind in columns if name.endswith("concept_id")
    ]  # fmt: skip
    for table, column in concept_columns:
        missing = cdm.execute(
            f"SELECT DISTINCT {column}::BIGINT FROM {table} WHERE {column} IS NOT NULL "
            f"AND {column}::BIGINT NOT IN (SELECT concept_id FROM concept)"
        ).fetchall()
        assert missing == [], f"{table}.{column} refers to concepts missing from concept: {missing}"


def test_concept_ancestor_is_closed_transitive_and_reflexive(cdm: duckdb.DuckDBPyConnection) -> None:
    outside = cdm.execute(
        "SELECT count(*) FROM concept_ancestor WHERE ancestor_concept_id NOT IN (SELECT concept_id FROM concept) "
        "OR descendant_concept_id NOT IN (SELECT concept_id FROM concept)"
    ).fetchone()
    assert outside == (0,)
    not_transitive = cdm.execute(
        "SELECT count(*) FROM concept_ancestor a JOIN concept_ancestor b ON a.descendant_concept_id = "
        "b.ancestor_concept_id LEFT JOIN concept_ancestor c ON c.ancestor_concept_id = a.ancestor_concept_id "
        "AND c.descendant_concept_id = b.descendant_concept_id WHERE c.ancestor_concept_id IS NULL"
    ).fetchone()
    assert not_transitive == (0,)
    without_self = cdm.execute(
        "SELECT count(*) FROM concept WHERE standard_concept = 'S' AND concept_id NOT IN "
        "(SELECT ancestor_concept_id FROM concept_ancestor WHERE descendant_concept_id = ancestor_concept_id "
        "AND min_levels_of_separation = 0 AND max_levels_of_separation = 0)"
    ).fetchone()
    assert without_self == (0,)
    # the hierarchy a cohort relies on: diabetes mellitus ⊃ type 2 diabetes; simvastatin ⊃ its tablets
    pairs = set(cdm.execute("SELECT ancestor_concept_id, descendant_concept_id FROM concept_ancestor").fetchall())
    assert (201820, 201826) in pairs
    assert (1539403, 1539411) in pairs
    assert (46271022, 443597) in pairs


def test_every_event_visit_exists(cdm: duckdb.DuckDBPyConnection) -> None:
    for table in ("condition_occurrence", "drug_exposure", "measurement", "procedure_occurrence"):
        orphans = cdm.execute(
            f"SELECT count(*) FROM {table} WHERE visit_occurrence_id NOT IN "
            "(SELECT visit_occurrence_id FROM visit_occurrence)"
        ).fetchone()
        assert orphans == (0,), table


def test_events_fall_inside_the_observation_period(cdm: duckdb.DuckDBPyConnection) -> None:
    outside = cdm.execute(
        "SELECT count(*) FROM visit_occurrence v JOIN observation_period o USING (person_id) "
        "WHERE v.visit_start_date < o.observation_period_start_date "
        "OR v.visit_end_date > o.observation_period_end_date"
    ).fetchone()
    assert outside == (0,)


def test_hba1c_is_higher_in_people_with_diabetes(cdm: duckdb.DuckDBPyConnection) -> None:
    rows = dict(
        cdm.execute(
            "SELECT person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id IN "
            "(SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = 201820)) AS diabetic, "
            "avg(value_as_number) FROM measurement WHERE measurement_concept_id = 3004410 GROUP BY 1"
        ).fetchall()
    )
    assert rows[True] > rows[False] + 1.0


def test_egfr_is_lower_with_chronic_kidney_disease(cdm: duckdb.DuckDBPyConnection) -> None:
    rows = dict(
        cdm.execute(
            "SELECT person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 443597), "
            "avg(value_as_number) FROM measurement WHERE measurement_concept_id = 46236952 GROUP BY 1"
        ).fetchall()
    )
    assert rows[True] < rows[False] - 15


def test_type_2_diabetes_prevalence_rises_with_age(cdm: duckdb.DuckDBPyConnection) -> None:
    prevalence = [
        row[1]
        for row in cdm.execute(
            "SELECT least((2024 - year_of_birth) // 20, 4) AS band, avg((person_id IN (SELECT person_id FROM "
            "condition_occurrence WHERE condition_concept_id = 201826))::INT) FROM person GROUP BY 1 ORDER BY 1"
        ).fetchall()
    ]
    assert prevalence[1] < prevalence[2] < prevalence[3]
    assert prevalence[0] < 0.01


def test_eras_agree_with_their_events(cdm: duckdb.DuckDBPyConnection) -> None:
    condition_counts = cdm.execute(
        "SELECT (SELECT count(*) FROM condition_occurrence), (SELECT sum(condition_occurrence_count) FROM "
        "condition_era)"
    ).fetchone()
    assert condition_counts[0] == condition_counts[1]
    drug_counts = cdm.execute(
        "SELECT (SELECT count(*) FROM drug_exposure), (SELECT sum(drug_exposure_count) FROM drug_era), "
        "(SELECT count(*) FROM drug_era WHERE gap_days < 0 OR drug_era_end_date < drug_era_start_date)"
    ).fetchone()
    assert drug_counts[0] == drug_counts[1]
    assert drug_counts[2] == 0
    ingredients = cdm.execute(
        "SELECT count(*) FROM drug_era e JOIN concept c ON c.concept_id = e.drug_concept_id "
        "WHERE c.concept_class_id <> 'Ingredient'"
    ).fetchone()
    assert ingredients == (0,)


def test_deaths_are_more_common_with_age(cdm: duckdb.DuckDBPyConnection) -> None:
    young, old = cdm.execute(
        "SELECT avg((person_id IN (SELECT person_id FROM death))::INT) FILTER (WHERE year_of_birth > 1975), "
        "avg((person_id IN (SELECT person_id FROM death))::INT) FILTER (WHERE year_of_birth < 1945) FROM person"
    ).fetchone()
    assert old > young * 5


def test_loads_into_duckdb_through_the_loader(cdm_dir: Path, tmp_path: Path) -> None:
    from warehouse.engines import connect
    from warehouse.loader import load_cdm_directory

    engine = connect("duckdb", f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    try:
        load_cdm_directory(engine, cdm_dir, cdm_schema="cdm", cdm_version="5.4")
        persons = engine.fetchone("SELECT count(*) FROM cdm.person")
        ancestors = engine.fetchone("SELECT count(*) FROM cdm.concept_ancestor")
    finally:
        engine.close()
    assert persons[0] == PERSONS
    assert ancestors[0] == len(vocabulary.ancestor_rows())


def test_chunks_publish_id_offsets_in_order_and_a_failure_does_not_block_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The handshake of parallel._run_pooled, driven in one process: chunk 2 fails, chunk 3 must fail, not wait.
    tables = generator.ID_TABLES
    states = [0, 0, 0, 0]
    monkeypatch.setattr(parallel, "_shared", (threading.Condition(), [0] * (4 * len(tables)), states))
    assert parallel._offsets_from_shared(0, dict.fromkeys(tables, 5), failed=False) == dict.fromkeys(tables, 0)
    assert parallel._offsets_from_shared(1, dict.fromkeys(tables, 7), failed=False) == dict.fromkeys(tables, 5)
    assert parallel._offsets_from_shared(2, {}, failed=True) == {}
    with pytest.raises(RuntimeError, match="chunk 2 failed"):
        parallel._offsets_from_shared(3, dict.fromkeys(tables, 1), failed=False)
    assert states == [1, 1, -1, -1]


#: The columns the cohort compiler filters or reads (cohorts/expression/domains.py and cohorts/compiler/criteria.py,
#: listed here because warehouse/ imports nothing of cohorts/): every one must hold values, or the differential
#: suite proves its construct on empty results only. PayerPlanPeriod and LocationRegion have no data (no tables).
COMPILER_COLUMNS: dict[str, tuple[str, ...]] = {
    "condition_occurrence": (
        "condition_concept_id", "condition_source_concept_id", "condition_end_date", "condition_type_concept_id",
        "condition_status_concept_id", "stop_reason", "provider_id", "visit_occurrence_id",
    ),
    "drug_exposure": (
        "drug_concept_id", "drug_source_concept_id", "drug_type_concept_id", "stop_reason", "refills", "quantity",
        "days_supply", "route_concept_id", "lot_number", "provider_id", "visit_occurrence_id",
    ),
    "procedure_occurrence": ("procedure_concept_id", "procedure_source_concept_id", "procedure_type_concept_id",
                             "quantity"),
    "measurement": (
        "measurement_concept_id", "measurement_source_concept_id", "measurement_type_concept_id",
        "operator_concept_id", "value_as_number", "value_as_concept_id", "unit_concept_id", "range_low", "range_high",
    ),
    "observation": ("observation_concept_id", "observation_source_concept_id", "observation_type_concept_id",
                    "value_as_number", "value_as_string", "value_as_concept_id"),
    "visit_occurrence": ("visit_concept_id", "visit_source_concept_id", "visit_type_concept_id", "provider_id",
                         "care_site_id"),
    "visit_detail": ("visit_detail_concept_id", "visit_detail_source_concept_id", "visit_detail_type_concept_id",
                     "provider_id", "care_site_id", "visit_occurrence_id"),
    "device_exposure": ("device_concept_id", "device_source_concept_id", "device_type_concept_id",
                        "unique_device_id", "quantity", "device_exposure_end_date"),
    "specimen": ("specimen_concept_id", "specimen_type_concept_id", "quantity", "unit_concept_id",
                 "anatomic_site_concept_id", "disease_status_concept_id", "specimen_source_id"),
    "death": ("cause_concept_id", "cause_source_concept_id", "death_type_concept_id"),
    "condition_era": ("condition_concept_id", "condition_occurrence_count"),
    "drug_era": ("drug_concept_id", "drug_exposure_count", "gap_days"),
    "dose_era": ("drug_concept_id", "unit_concept_id", "dose_value"),
    "provider": ("specialty_concept_id",),
    "care_site": ("place_of_service_concept_id",),
}  # fmt: skip
#: Attribute columns that are recorded for part of the rows only, as in a real feed (NULL for the rest).
SOMETIMES_NULL = {
    ("condition_occurrence", "condition_end_date"), ("condition_occurrence", "condition_status_concept_id"),
    ("condition_occurrence", "stop_reason"), ("drug_exposure", "refills"), ("drug_exposure", "quantity"),
    ("drug_exposure", "route_concept_id"), ("drug_exposure", "stop_reason"), ("measurement", "operator_concept_id"),
    ("measurement", "value_as_number"), ("measurement", "value_as_concept_id"), ("measurement", "range_low"),
    ("measurement", "unit_concept_id"), ("specimen", "anatomic_site_concept_id"), ("specimen", "quantity"),
    ("device_exposure", "unique_device_id"), ("provider", "specialty_concept_id"),
    ("care_site", "place_of_service_concept_id"), ("death", "cause_concept_id"),
}  # fmt: skip


def test_every_column_the_compiler_reads_holds_values(cdm: duckdb.DuckDBPyConnection) -> None:
    for table, columns in COMPILER_COLUMNS.items():
        for column in columns:
            filled, rows = cdm.execute(f"SELECT count({column}), count(*) FROM {table}").fetchone()
            assert filled > 0, f"{table}.{column} is empty"
            if (table, column) in SOMETIMES_NULL:
                assert filled < rows, f"{table}.{column} is never NULL"


def test_condition_eras_are_30_day_persistence_windows(cdm: duckdb.DuckDBPyConnection) -> None:
    # Eras of a person and concept are more than 30 days apart, and each occurrence lies in exactly one era
    # (a missing end date counting as the start + 1, the OHDSI rule).
    too_close = cdm.execute(
        "SELECT count(*) FROM (SELECT condition_era_start_date AS s, lag(condition_era_end_date) OVER "
        "(PARTITION BY person_id, condition_concept_id ORDER BY condition_era_start_date) AS previous_end "
        "FROM condition_era) WHERE s <= previous_end + 30"
    ).fetchone()
    assert too_close == (0,)
    outside = cdm.execute(
        "SELECT count(*) FROM condition_occurrence o WHERE (SELECT count(*) FROM condition_era e "
        "WHERE e.person_id = o.person_id AND e.condition_concept_id = o.condition_concept_id "
        "AND o.condition_start_date BETWEEN e.condition_era_start_date AND e.condition_era_end_date "
        "AND coalesce(o.condition_end_date, o.condition_start_date + 1) <= e.condition_era_end_date) <> 1"
    ).fetchone()
    assert outside == (0,)


def test_drug_and_dose_eras_follow_the_ohdsi_scripts(cdm: duckdb.DuckDBPyConnection) -> None:
    for table, key in (("drug_era", "drug_concept_id"), ("dose_era", "drug_concept_id, dose_value")):
        too_close = cdm.execute(
            f"SELECT count(*) FROM (SELECT {table}_start_date AS s, lag({table}_end_date) OVER "
            f"(PARTITION BY person_id, {key} ORDER BY {table}_start_date) AS previous_end FROM {table}) "
            "WHERE s <= previous_end + 30"
        ).fetchone()
        assert too_close == (0,), table
    # Gap days: the era's days not covered by its exposures (era length minus the merged exposures' lengths).
    gaps = cdm.execute(
        "SELECT count(*) FILTER (WHERE gap_days < 0 OR gap_days > drug_era_end_date - drug_era_start_date), "
        "count(*) FILTER (WHERE gap_days > 0) FROM drug_era"
    ).fetchone()
    assert gaps[0] == 0 and gaps[1] > 0
    units = cdm.execute("SELECT DISTINCT unit_concept_id FROM dose_era").fetchall()
    assert units == [(8576,)]  # milligram: the strengths of the RxNorm names read


def test_visit_details_lie_inside_their_visit(cdm: duckdb.DuckDBPyConnection) -> None:
    outside = cdm.execute(
        "SELECT count(*) FROM visit_detail d JOIN visit_occurrence v USING (visit_occurrence_id) "
        "WHERE d.person_id <> v.person_id OR d.visit_detail_start_date < v.visit_start_date "
        "OR d.visit_detail_end_date > v.visit_end_date"
    ).fetchone()
    assert outside == (0,)
    kinds = dict(cdm.execute("SELECT visit_detail_concept_id, count(*) FROM visit_detail GROUP BY 1").fetchall())
    assert set(kinds) == {9201, 9203, 32037}  # ward, emergency room, intensive care


def test_concepts_of_the_attributes_have_their_domain() -> None:
    known = vocabulary.concepts()
    expected = {
        32902: "Condition Status", 4132161: "Route", 8717: "Visit", 38004456: "Provider", 4001225: "Specimen",
        4111459: "Spec Anatomic Site", 4066212: "Spec Disease Status", 4172703: "Meas Value Operator",
        9191: "Meas Value", 4155142: "Meas Value", 43054909: "Observation", 45767945: "Device",
    }  # fmt: skip
    assert {cid: known[cid].domain_id for cid in expected} == expected
