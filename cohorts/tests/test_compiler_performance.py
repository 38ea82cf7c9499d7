"""The shape of the SQL that keeps interactive counting fast, and the progress report of a generation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.compiler import compile_cohort
from cohorts.compiler.cohort import RESULTS_TABLES
from cohorts.compiler.context import TEMP_TABLES
from cohorts.runs.generation import generate_cohort, statement_label
from cohorts.tests.conftest import oracle_definition

SCHEMAS = {"cdm_schema": "cdm", "vocabulary_schema": "vocab", "results_schema": "results"}


def statements(name: str, dialect: str) -> list[str]:
    compiled = compile_cohort(oracle_definition(name), dialect=dialect, cohort_id=1, **SCHEMAS)
    return [sql for sql, _ in compiled.statements + compiled.cleanup]


def test_postgresql_turns_jit_and_nested_loops_off_for_the_transaction_only() -> None:
    first = statements("pl_2078", "postgresql")[5]  # after the results DDL (schema, 2 tables, 2 indexes)
    assert "set_config('jit', 'off', true)" in first
    assert "set_config('enable_nestloop', 'off', true)" in first
    assert not any("set_config" in sql for sql in statements("pl_2078", "duckdb"))


def test_postgresql_reaches_the_concept_index_through_an_array_of_the_codeset() -> None:
    sql = "\n".join(statements("h01_celecoxib_new_users_custom_era", "postgresql"))
    assert "de.drug_concept_id = ANY(ARRAY(SELECT concept_id FROM soyang_codesets WHERE codeset_id = 0))" in sql
    assert "JOIN soyang_codesets" not in sql


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_only_the_qualified_events_get_statistics_as_only_they_are_joined(dialect: str) -> None:
    sql = statements("pl_20705", dialect)
    analyzed = [s for s in sql if s.startswith("ANALYZE")]
    # The codesets are read through arrays computed once, the per-event masks by scans and a window.
    # Only the join keys' statistics (with the row count): histograms of the dates would cost more than they give.
    assert analyzed == (["ANALYZE soyang_qualified_events (person_id, event_id)"] if dialect == "postgresql" else [])


def test_postgresql_raises_work_mem_for_the_transaction_without_lowering_a_larger_setting() -> None:
    first = statements("pl_2078", "postgresql")[5]  # after the results DDL (schema, 2 tables, 2 indexes)
    assert "set_config('work_mem', CASE WHEN pg_size_bytes(current_setting('work_mem')) < 67108864" in first
    assert "ELSE current_setting('work_mem') END, true)" in first


def test_postgresql_results_tables_are_indexed_by_cohort_id_for_the_delete() -> None:
    sql = statements("pl_2078", "postgresql")
    assert (
        "DO $$ BEGIN IF to_regclass('\"results\".brin_cohort_definition') IS NULL THEN "
        'CREATE INDEX IF NOT EXISTS brin_cohort_definition ON "results".cohort '
        "USING brin (cohort_definition_id int8_minmax_multi_ops) WITH (pages_per_range = 16, autosummarize = on); "
        'DROP INDEX IF EXISTS "results".ix_cohort_definition; END IF; END $$'
    ) in sql
    assert not any("CREATE INDEX" in s for s in statements("pl_2078", "duckdb"))


def test_postgresql_results_btree_of_earlier_versions_gives_way_to_the_brin(
    cdm_gibleed_pg: Any, oracle_dir: Path
) -> None:
    cdm = cdm_gibleed_pg
    schema = "results_brin_probe"
    expression = json.loads((oracle_dir / "cohorts" / "pl_10606.json").read_text())
    schemas = {"cdm_schema": cdm.cdm_schema, "vocabulary_schema": cdm.vocabulary_schema, "results_schema": schema}
    cdm.engine.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    # The results tables as an earlier version left them: b-tree indexes by cohort id, and rows of older runs.
    cdm.engine.execute(f'CREATE SCHEMA "{schema}"')
    for table, columns in RESULTS_TABLES.items():
        cdm.engine.execute(f'CREATE TABLE "{schema}".{table} ({columns})')
        cdm.engine.execute(f'CREATE INDEX ix_{table}_definition ON "{schema}".{table} (cohort_definition_id)')
    try:
        first = generate_cohort(cdm.engine, expression, cohort_id=920_201, **schemas)
        indexes = dict(
            cdm.engine.fetchall(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(schema)s", {"schema": schema}
            )
        )
        assert sorted(indexes) == ["brin_cohort_definition", "brin_cohort_inclusion_result_definition"]
        assert all("USING brin (cohort_definition_id int8_minmax_multi_ops)" in d for d in indexes.values())
        second = generate_cohort(cdm.engine, expression, cohort_id=920_202, **schemas)
        again = generate_cohort(cdm.engine, expression, cohort_id=920_201, **schemas)
        assert first.rows == second.rows == again.rows == 413
        counts = cdm.engine.fetchall(
            f'SELECT cohort_definition_id, COUNT(*) FROM "{schema}".cohort GROUP BY 1 ORDER BY 1'  # noqa: S608
        )
        assert [(int(c), int(n)) for c, n in counts] == [(920_201, 413), (920_202, 413)]
        cdm.engine.execute(f'VACUUM "{schema}".cohort')  # summarizes the ranges, as autovacuum would
        with cdm.engine.transaction():
            cdm.engine.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(
                line
                for (line,) in cdm.engine.fetchall(
                    f'EXPLAIN DELETE FROM "{schema}".cohort WHERE cohort_definition_id = 920202'  # noqa: S608
                )
            )
        assert "Bitmap Index Scan on brin_cohort_definition" in plan
    finally:
        cdm.engine.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_masks_are_computed_once_per_event_and_no_rule_means_no_mask_table() -> None:
    with_rules = statements("pl_20705", "postgresql")
    masks = next(s for s in with_rules if s.startswith("CREATE TEMPORARY TABLE soyang_inclusion_events"))
    assert "AS mask" in masks and "GROUP BY Q." not in masks
    assert not any("SUM(I.rule_bit)" in s for s in with_rules)
    no_rules = statements("pl_10606", "postgresql")
    assert not any(s.startswith("CREATE TEMPORARY TABLE soyang_inclusion_events") for s in no_rules)


def test_one_event_per_person_needs_no_era_collapse() -> None:
    # pl_10606: the first condition per person, so one cohort row per person.
    final = next(s for s in statements("pl_10606", "duckdb") if "soyang_final_cohort AS" in s)
    assert "group_idx" not in final
    # h12: every observation period of a person, which the era collapse may merge.
    final = next(s for s in statements("h12_long_observation_children", "duckdb") if "soyang_final_cohort AS" in s)
    assert "group_idx" in final


def test_a_rule_of_one_criterion_is_not_grouped_again() -> None:
    masks = next(
        s for s in statements("pl_22168", "postgresql") if s.startswith("CREATE TEMPORARY TABLE soyang_inclusion")
    )
    assert "HAVING COUNT(CQ.index_id)" not in masks
    assert masks.count("WHERE NOT EXISTS (SELECT 1 FROM (") == 2


def test_cohort_ends_are_one_group_by_without_joining_the_events_again() -> None:
    final = next(
        s for s in statements("h04_gibleed_censored_by_acetaminophen", "duckdb") if "soyang_final_cohort AS" in s
    )
    assert "JOIN cohort_ends" not in final
    assert "MIN(end_date) AS end_date FROM cohort_ends WHERE end_date >= start_date" in final


def test_statement_labels_name_the_work_never_a_value() -> None:
    assert statement_label("CREATE TEMPORARY TABLE soyang_qualified_events AS\nSELECT 1") == "build qualified events"
    assert statement_label("CREATE OR REPLACE TEMPORARY TABLE soyang_final_cohort AS\nSELECT 1") == "build final cohort"
    assert statement_label('INSERT INTO "r".cohort (a) SELECT 1') == "write cohort"
    assert statement_label('DELETE FROM "r".cohort WHERE x = 1') == "clear cohort"
    assert statement_label("SELECT set_config('jit', 'off', true)") == "prepare"


def test_generation_reports_step_k_of_n(cdm_gibleed_duckdb: Any, oracle_dir: Path) -> None:
    cdm = cdm_gibleed_duckdb
    expression = json.loads((oracle_dir / "cohorts" / "pl_10606.json").read_text())
    seen: list[tuple[int, int, str]] = []
    result = generate_cohort(
        cdm.engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=920_001,
        progress=lambda step, total, label: seen.append((step, total, label)),
    )
    assert result.rows == 413
    total = seen[0][1]
    assert [step for step, _, _ in seen] == list(range(1, total + 1))
    assert {t for _, t, _ in seen} == {total}
    assert "build final cohort" in [label for _, _, label in seen]


def test_postgresql_temp_tables_go_with_the_commit_and_need_no_cleanup() -> None:
    compiled = compile_cohort(oracle_definition("pl_20705"), dialect="postgresql", cohort_id=1, **SCHEMAS)
    creates = [sql for sql, _ in compiled.statements if sql.startswith("CREATE TEMPORARY TABLE")]
    assert creates and all(" ON COMMIT DROP AS\n" in sql for sql in creates)
    assert compiled.cleanup == []
    # Nothing of an earlier generation can be left on the connection, so nothing is dropped first.
    assert not any(sql.startswith("DROP") for sql, _ in compiled.statements)
    duck = compile_cohort(oracle_definition("pl_20705"), dialect="duckdb", cohort_id=1, **SCHEMAS)
    assert [sql for sql, _ in duck.cleanup] == [f"DROP TABLE IF EXISTS {name}" for name in TEMP_TABLES]


def test_counts_and_masks_are_read_back_in_one_statement_from_the_final_cohort() -> None:
    compiled = compile_cohort(
        oracle_definition("h09_concussion_censor_window"), dialect="postgresql", cohort_id=5, **SCHEMAS
    )
    assert compiled.readback is not None
    sql, params = compiled.readback
    assert "FROM soyang_final_cohort" in sql and "cohort_inclusion_result" in sql
    assert '"results".cohort ' not in sql  # no scan of the results cohort table
    assert params  # the censor window's dates stay bound


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_at_least_one_occurrence_is_a_semi_join_without_grouping(dialect: str) -> None:
    sql = "\n".join(statements("h06_pharyngitis_at_least_two_nested", dialect))
    assert "HAVING COUNT(cc.event_id) >= 1" not in sql
    if dialect == "postgresql":
        assert "WHERE EXISTS (SELECT 1 FROM (" in sql
    else:  # DuckDB: a join on the person and DISTINCT, no correlated subquery for it to decorrelate
        assert "EXISTS (SELECT 1" not in sql
        assert "SELECT DISTINCT 0 AS index_id, person_id, event_id FROM (\nSELECT P.person_id, P.event_id" in sql


def test_duckdb_writes_no_occurrence_as_except() -> None:
    masks = next(
        s
        for s in statements("pl_22168", "duckdb")
        if s.startswith("CREATE OR REPLACE TEMPORARY TABLE soyang_inclusion")
    )
    assert masks.count("\nEXCEPT\nSELECT P.person_id, P.event_id FROM soyang_qualified_events P") == 2
    assert "NOT EXISTS" not in masks


def test_vocabulary_tables_are_reached_through_index_conditions() -> None:
    codesets = next(
        s for s in statements("pl_20766", "postgresql") if s.startswith("CREATE TEMPORARY TABLE soyang_codesets")
    )
    assert "ca.ancestor_concept_id in (" in codesets
    assert "c.concept_id = ANY(ARRAY(SELECT concept_id FROM ancestry))" in codesets
    assert "cr.concept_id_2 = ANY(ARRAY(SELECT concept_id FROM expanded WHERE include_mapped))" in codesets


def test_no_occurrence_is_an_anti_join() -> None:
    expression = {
        "ConceptSets": [{"id": 0, "name": "c", "expression": {"items": [{"concept": {"CONCEPT_ID": 192671}}]}}],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "All"},
        },
        "InclusionRules": [
            {
                "name": "none before",
                "expression": {
                    "Type": "ALL",
                    "CriteriaList": [
                        {
                            "Criteria": {"ConditionOccurrence": {"CodesetId": 0}},
                            "StartWindow": {"Start": {"Coeff": -1}, "End": {"Days": 1, "Coeff": -1}},
                            "Occurrence": {"Type": 0, "Count": 0},
                        }
                    ],
                    "DemographicCriteriaList": [],
                    "Groups": [],
                },
            }
        ],
    }
    compiled = compile_cohort(expression, dialect="postgresql", cohort_id=1, **SCHEMAS)
    sql = "\n".join(s for s, _ in compiled.statements)
    assert "WHERE NOT EXISTS (SELECT 1 FROM (" in sql
    assert "HAVING COUNT(cc.event_id) = 0" not in sql


def test_postgresql_compiles_resolved_concept_sets_in_as_bound_arrays() -> None:
    compiled = compile_cohort(
        oracle_definition("h01_celecoxib_new_users_custom_era"),
        dialect="postgresql",
        cohort_id=1,
        codeset_values={0: [1118084, 1118085]},
        **SCHEMAS,
    )
    entries = next(sql for sql, _ in compiled.statements if "soyang_entry_events ON COMMIT DROP" in sql)
    params = next(p for sql, p in compiled.statements if "soyang_entry_events ON COMMIT DROP" in sql)
    # The planner sees the ids (psycopg2 sends them as an array literal), not an InitPlan over a temp table.
    assert "de.drug_concept_id = ANY(%(p" in entries and "ARRAY(SELECT concept_id" not in entries
    assert [1118084, 1118085] in params.values()
    # Nothing reads the codesets table then: it is not written.
    assert not any("soyang_codesets" in sql for sql, _ in compiled.statements)
    # A type-concept selection still reads it: written from the bound arrays, not resolved again.
    expression = oracle_definition("h01_celecoxib_new_users_custom_era")
    drug = expression["PrimaryCriteria"]["CriteriaList"][0]["DrugExposure"]
    expression["PrimaryCriteria"]["CriteriaList"][0]["DrugExposure"] = {
        **drug,
        "DrugTypeCS": {"CodesetId": 0, "IsExclusion": False},
    }
    compiled = compile_cohort(expression, dialect="postgresql", cohort_id=1, codeset_values={0: [1118084]}, **SCHEMAS)
    codesets = next(sql for sql, _ in compiled.statements if "soyang_codesets ON COMMIT DROP" in sql)
    assert "unnest(CAST(%(p" in codesets and "concept_ancestor" not in codesets
    assert sum("FROM soyang_codesets" in sql or "from soyang_codesets" in sql for sql, _ in compiled.statements) >= 1


def test_postgresql_generation_sets_up_once_and_drops_nothing_first(cdm_gibleed_pg: Any, oracle_dir: Path) -> None:
    cdm = cdm_gibleed_pg
    executed: list[str] = []
    expression = json.loads((oracle_dir / "cohorts" / "pl_10606.json").read_text())
    schemas = {"cdm_schema": cdm.cdm_schema, "vocabulary_schema": cdm.vocabulary_schema}
    for cohort_id in (920_301, 920_302):  # the second on a connection that ran a generation before
        executed.clear()
        result = generate_cohort(
            Recording(cdm.engine, executed),
            expression,
            cohort_id=cohort_id,
            results_schema=cdm.results_schema,
            **schemas,
        )
        assert result.rows == 413
        assert sum("set_config('jit', 'off', true)" in sql for sql in executed) == 1
        assert not any(sql.startswith("DROP") or "soyang_codesets" in sql for sql in executed)


def test_generation_resolves_concept_sets_first_on_postgresql_only() -> None:
    from cohorts.compiler.dialects import dialect_for

    assert dialect_for("postgresql").inline_codesets
    assert not dialect_for("duckdb").inline_codesets


def test_postgresql_allows_nested_loops_only_where_the_staged_entry_events_meet_the_periods() -> None:
    sql = statements("pl_12401", "postgresql")
    entries = next(i for i, s in enumerate(sql) if s.startswith("CREATE TEMPORARY TABLE soyang_entry_events"))
    qualified = next(i for i, s in enumerate(sql) if s.startswith("CREATE TEMPORARY TABLE soyang_qualified_events"))
    assert "FROM soyang_entry_events E" in sql[qualified]
    assert "set_config('enable_nestloop', 'on', true)" in sql[qualified - 1]
    assert "set_config('random_page_cost'" in sql[qualified - 1]
    after = sql[qualified + 1]
    assert "set_config('enable_nestloop', 'off', true)" in after
    assert "current_setting('soyang.random_page_cost')" in after
    assert entries < qualified
    # With additional criteria the qualified events' statement also groups matches: nested loops stay off.
    guarded = statements("pl_2078", "postgresql")
    assert not any("'enable_nestloop', 'on'" in s for s in guarded)
    # DuckDB reads the entry events inline.
    assert not any("soyang_entry_events AS" in s for s in statements("pl_12401", "duckdb"))


def test_no_qualified_ranking_without_a_qualified_limit_to_apply() -> None:
    qualified = next(s for s in statements("pl_12401", "duckdb") if "soyang_qualified_events AS" in s)
    # pl_12401: First entry event per person, so nothing to rank once the entry events are limited.
    assert qualified.count("row_number()") == 1  # the entry limit's ranking; none for the qualified events
    expression = oracle_definition("pl_2078")
    assert expression.get("AdditionalCriteria")
    expression = {**expression, "QualifiedLimit": {"Type": "First"}}
    sql = [s for s, _ in compile_cohort(expression, dialect="duckdb", cohort_id=1, **SCHEMAS).statements]
    ranked = next(s for s in sql if "soyang_qualified_events AS" in s)
    assert "WHERE QE.ordinal = 1" in ranked


def test_one_event_per_person_gives_the_by_person_masks_without_ranking() -> None:
    stats = next(
        s
        for s in statements("h06_pharyngitis_at_least_two_nested", "duckdb")
        if "cohort_inclusion_result" in s and s.startswith("INSERT")
    )
    assert "row_number()" not in stats and "GROUP BY mask" in stats
    stats = next(
        s for s in statements("pl_2078", "duckdb") if "cohort_inclusion_result" in s and s.startswith("INSERT")
    )
    assert "row_number() OVER (PARTITION BY person_id" in stats


class Recording:
    """An engine that notes every statement it passes on."""

    def __init__(self, engine: Any, executed: list[str]) -> None:
        self.engine, self.executed, self.kind = engine, executed, engine.kind

    def execute(self, sql: str, params: Any = None) -> Any:
        self.executed.append(sql)
        return self.engine.execute(sql, params)

    def fetchall(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.executed.append(sql)
        return list(self.engine.fetchall(sql, params))

    def transaction(self) -> Any:
        return self.engine.transaction()


def test_results_ddl_runs_only_when_a_results_table_is_missing(cdm_gibleed: Any, oracle_dir: Path) -> None:
    cdm = cdm_gibleed
    executed: list[str] = []

    expression = json.loads((oracle_dir / "cohorts" / "pl_10606.json").read_text())
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": "results_ddl_probe",
    }
    cdm.engine.execute('DROP SCHEMA IF EXISTS "results_ddl_probe" CASCADE')
    try:
        first = generate_cohort(Recording(cdm.engine, executed), expression, cohort_id=920_101, **schemas)
        assert any(sql.startswith("CREATE TABLE IF NOT EXISTS") for sql in executed)
        executed.clear()
        second = generate_cohort(Recording(cdm.engine, executed), expression, cohort_id=920_102, **schemas)
        assert not any(sql.startswith(("CREATE SCHEMA", "CREATE TABLE", "DO $$")) for sql in executed)
        assert first.rows == second.rows == 413
        cdm.engine.execute('DROP TABLE "results_ddl_probe".cohort_inclusion_result')
        executed.clear()
        third = generate_cohort(Recording(cdm.engine, executed), expression, cohort_id=920_103, **schemas)
        assert any(sql.startswith("CREATE TABLE IF NOT EXISTS") for sql in executed)
        assert third.rows == 413 and third.inclusion_rules == first.inclusion_rules
    finally:
        cdm.engine.execute('DROP SCHEMA IF EXISTS "results_ddl_probe" CASCADE')


def test_postgresql_expands_the_included_events_where_censoring_joins_them() -> None:
    final = next(
        s
        for s in statements("h04_gibleed_censored_by_acetaminophen", "postgresql")
        if "soyang_final_cohort ON COMMIT DROP" in s
    )
    # A plain filter of the analyzed qualified events: the censoring join sees their statistics.
    assert "included_events AS NOT MATERIALIZED (" in final
    duck = next(
        s for s in statements("h04_gibleed_censored_by_acetaminophen", "duckdb") if "soyang_final_cohort AS" in s
    )
    assert "NOT MATERIALIZED" not in duck
    # With an expression limit over several events per person the ranking is computed once, not per use.
    limited = next(s for s in statements("pl_12396", "postgresql") if "soyang_final_cohort ON COMMIT DROP" in s)
    assert "included_events AS (" in limited and "NOT MATERIALIZED" not in limited


def test_a_group_of_several_members_counts_their_rows_without_joining_the_events_back() -> None:
    masks = next(
        s
        for s in statements("h06_pharyngitis_at_least_two_nested", "postgresql")
        if s.startswith("CREATE TEMPORARY TABLE soyang_inclusion_events")
    )
    # The rule's group (AT_LEAST 2 of three members) over the qualified events: one GROUP BY of the members.
    assert "SELECT CQ.person_id, CQ.event_id FROM (" in masks
    assert "HAVING COUNT(CQ.index_id) >= 2" in masks


def test_cohort_eras_are_numbered_by_day_in_one_order() -> None:
    final = next(s for s in statements("h12_long_observation_children", "duckdb") if "soyang_final_cohort AS" in s)
    assert "SUM(is_start) OVER (PARTITION BY person_id ORDER BY start_date) AS group_idx" in final
    # A custom era's drug exposures may end before they start: Circe's row-by-row numbering there.
    custom = next(
        s for s in statements("h01_celecoxib_new_users_custom_era", "duckdb") if "soyang_final_cohort AS" in s
    )
    assert "ORDER BY start_date, is_start DESC ROWS UNBOUNDED PRECEDING) AS group_idx" in custom
