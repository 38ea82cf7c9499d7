"""A comparison's site computation counts, in one transaction, the persons and cell key of every combination of
2-4 cohorts exactly as SQL over each cohort's generated rows says, on PostgreSQL and DuckDB (GiBleed, oracle
definitions); each cohort's total is its own count; a listed zero is listed like any other combination."""

from __future__ import annotations

import json
from itertools import combinations as subsets
from pathlib import Path
from typing import Any

import pytest

from cohorts.expression import parse_expression
from cohorts.runs.generation import cohort_rows, count_cohort, generate_cohort
from cohorts.runs.overlap import all_masks, cohort_overlap
from disclosure.cellkey import cell_key, record_key, record_key_table_build
from warehouse.engines import quote_ident

SECRET = b"record-key secret of the comparison test site"
#: GiBleed definitions whose cohorts overlap: celecoxib new users, GI bleed, long-observed children, pl_22168.
NAMES = ["h01_celecoxib_new_users_custom_era", "h04_gibleed_censored_by_acetaminophen", "pl_22168", "pl_3385"]
FIRST_ID = 917_300


@pytest.fixture
def keyed(cdm_gibleed: Any) -> Any:
    engine = cdm_gibleed.connect()
    record_key_table_build(
        engine,
        secret=SECRET,
        person_table=f"{quote_ident(cdm_gibleed.cdm_schema)}.person",
        table="record_keys",
        temporary=True,
    )
    yield engine, cdm_gibleed
    results = quote_ident(cdm_gibleed.results_schema)
    with engine.transaction():
        engine.execute(
            f"DELETE FROM {results}.cohort WHERE cohort_definition_id BETWEEN {FIRST_ID} AND {FIRST_ID + 10}"
        )
    engine.close()


def _expressions(oracle_dir: Path, names: list[str]) -> list[Any]:
    return [parse_expression(json.loads((oracle_dir / "cohorts" / f"{n}.json").read_text())) for n in names]


def _exact_combination(engine: Any, results: str, ids: list[int], mask: int) -> list[int]:
    """The persons in exactly the cohorts of ``mask`` (and none of the others), by SQL over the generated rows."""
    clauses = [
        f"{'' if mask & (1 << i) else 'NOT '}EXISTS (SELECT 1 FROM {results}.cohort c{i} "
        f"WHERE c{i}.cohort_definition_id = {cohort_id} AND c{i}.subject_id = u.subject_id)"
        for i, cohort_id in enumerate(ids)
    ]
    listed = ", ".join(str(i) for i in ids)
    return [
        int(person)
        for (person,) in engine.fetchall(
            f"SELECT u.subject_id FROM (SELECT DISTINCT subject_id FROM {results}.cohort "
            f"WHERE cohort_definition_id IN ({listed})) u WHERE {' AND '.join(clauses)}"
        )
    ]


@pytest.mark.parametrize("size", [2, 3, 4])
def test_every_combination_counts_what_sql_over_the_generated_cohorts_counts(
    keyed: Any, oracle_dir: Path, size: int
) -> None:
    engine, cdm = keyed
    names = NAMES[:size]
    expressions = _expressions(oracle_dir, names)
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    ids = [FIRST_ID + i for i in range(size)]
    for cohort_id, expression in zip(ids, expressions, strict=True):
        generate_cohort(engine, expression, cohort_id=cohort_id, **schemas)

    overlap = cohort_overlap(engine, expressions, record_keys="record_keys", **schemas)

    results = quote_ident(cdm.results_schema)
    assert sorted(overlap.combinations) == list(range(1, 1 << size)) == sorted(all_masks(size))
    non_empty = 0
    for mask in all_masks(size):
        persons = _exact_combination(engine, results, ids, mask)
        expected = (len(persons), cell_key(record_key(SECRET, p) for p in persons))
        assert overlap.combinations[mask] == expected, (names, mask)
        non_empty += bool(persons)
    assert non_empty >= size  # the cohorts do overlap: not a test of empty sets
    for position, (cohort_id, expression) in enumerate(zip(ids, expressions, strict=True)):
        members = {
            subject for subject, _, _ in cohort_rows(engine, results_schema=cdm.results_schema, cohort_id=cohort_id)
        }
        assert overlap.cohorts[position] == (len(members), cell_key(record_key(SECRET, p) for p in members))
        alone = count_cohort(engine, expression, record_keys="record_keys", **schemas)
        assert overlap.cohorts[position] == (alone.persons, alone.persons_key)
    union = set().union(*(set(_exact_combination(engine, results, ids, m)) for m in all_masks(size)))
    assert overlap.as_result()["union"] == {
        "persons": len(union),
        "key": cell_key(record_key(SECRET, p) for p in union),
    }
    # Nothing of the comparison is left on the connection: the next one starts clean.
    again = cohort_overlap(engine, expressions, record_keys="record_keys", **schemas)
    assert again.combinations == overlap.combinations


def test_a_pair_and_its_reverse_swap_their_one_only_cells(keyed: Any, oracle_dir: Path) -> None:
    engine, cdm = keyed
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    for first, second in subsets(_expressions(oracle_dir, NAMES[:3]), 2):
        ab = cohort_overlap(engine, [first, second], record_keys="record_keys", **schemas)
        ba = cohort_overlap(engine, [second, first], record_keys="record_keys", **schemas)
        assert (ab.combinations[1], ab.combinations[2], ab.combinations[3]) == (
            ba.combinations[2],
            ba.combinations[1],
            ba.combinations[3],
        )


def test_one_or_five_cohorts_are_refused_at_the_site(keyed: Any, oracle_dir: Path) -> None:
    engine, cdm = keyed
    expressions = _expressions(oracle_dir, NAMES)
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    for chosen in ([expressions[0]], [*expressions, expressions[0]]):
        with pytest.raises(ValueError, match="2 to 4 cohorts"):
            cohort_overlap(engine, chosen, record_keys="record_keys", **schemas)
