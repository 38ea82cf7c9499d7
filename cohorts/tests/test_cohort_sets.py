"""A set of definitions counted together shares its concept sets' resolution and counts exactly what each
definition counts alone: every oracle definition of a data set, on both engines and on a count store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.expression import parse_expression
from cohorts.runs.generation import ConceptSetCache, count_cohort, resolve_concept_sets
from cohorts.tests.conftest import CDM_FIXTURES, oracle_manifest

DATASETS = sorted({entry["dataset"] for entry in oracle_manifest()})


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_the_oracle_definitions_counted_as_a_set_count_like_circe(
    request: pytest.FixtureRequest, oracle_dir: Path, dataset: str, kind: str
) -> None:
    cdm: Any = request.getfixturevalue(CDM_FIXTURES[(dataset, kind)])
    names = [entry["name"] for entry in oracle_manifest() if entry["dataset"] == dataset]
    expressions = [parse_expression(json.loads((oracle_dir / "cohorts" / f"{n}.json").read_text())) for n in names]

    resolved = resolve_concept_sets(cdm.engine, expressions, vocabulary_schema=cdm.vocabulary_schema)

    assert len(resolved) == len(expressions)
    for name, expression, concepts in zip(names, expressions, resolved, strict=True):
        assert set(concepts) == {concept_set.id for concept_set in expression.concept_sets}, name
        result = count_cohort(
            cdm.engine,
            expression,
            cdm_schema=cdm.cdm_schema,
            vocabulary_schema=cdm.vocabulary_schema,
            results_schema=cdm.results_schema,
            resolved=concepts,
        )
        expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
        assert result.persons == expected["persons"], name
        by_person = expected["by_person"]
        assert result.attrition == [(r["name"], r["count"]) for r in by_person["attrition"]], name
        assert result.inclusion_rules == [(r["name"], r["count"]) for r in by_person["inclusion_rules"]], name


def test_identical_concept_sets_of_a_set_are_resolved_once(cdm_gibleed_duckdb: Any, oracle_dir: Path) -> None:
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / "pl_3385.json").read_text()))
    alone = resolve_concept_sets(cdm_gibleed_duckdb.engine, [expression], vocabulary_schema="gibleed")
    twice = resolve_concept_sets(cdm_gibleed_duckdb.engine, [expression, expression], vocabulary_schema="gibleed")
    assert twice == [alone[0], alone[0]]
    assert any(alone[0].values())  # some of its concepts are in the GiBleed vocabulary


class _Unreachable:
    """An engine that must not be asked anything."""

    kind = "duckdb"

    def fetchall(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cache asked the database again")

    def transaction(self) -> Any:
        raise AssertionError("the cache asked the database again")


def test_a_worker_resolves_a_concept_set_once_per_vocabulary(cdm_gibleed_duckdb: Any, oracle_dir: Path) -> None:
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / "pl_3385.json").read_text()))
    cache = ConceptSetCache()
    first = cache.resolve(cdm_gibleed_duckdb.engine, expression, vocabulary_schema="gibleed", vocabulary="site:f1")
    again = cache.resolve(_Unreachable(), expression, vocabulary_schema="gibleed", vocabulary="site:f1")  # type: ignore[arg-type]
    assert (
        again == first == resolve_concept_sets(cdm_gibleed_duckdb.engine, [expression], vocabulary_schema="gibleed")[0]
    )
    # Another fingerprint (the CDM was reloaded) is another vocabulary: resolved afresh.
    with pytest.raises(AssertionError, match="asked the database again"):
        cache.resolve(_Unreachable(), expression, vocabulary_schema="gibleed", vocabulary="site:f2")  # type: ignore[arg-type]


def test_the_cache_keeps_at_most_its_budget_of_concept_ids(cdm_gibleed_duckdb: Any, oracle_dir: Path) -> None:
    expressions = [
        parse_expression(json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text()))
        for name in ("pl_3385", "h01_celecoxib_new_users_custom_era", "pl_22168")
    ]
    cache = ConceptSetCache(max_concepts=50)
    for expression in expressions:
        cache.resolve(cdm_gibleed_duckdb.engine, expression, vocabulary_schema="gibleed", vocabulary="site:f")
    assert cache._size <= 50
