"""Soyang's cohort engine gives exactly what OHDSI Circe gives, on real and on random definitions.

Differential testing against the reference implementation: for each definition, Soyang's ``generate_cohort`` and
circe-be's own SQL (``circe_reference``) run on the same loaded CDM, and the cohort rows (subject, start, end)
and the by-person inclusion statistics (each rule on its own, and the attrition) must be identical.

Definitions come from two places:

- ``phenotypes/``: public OHDSI PhenotypeLibrary cohorts that use GiBleed concepts (see its README);
- hypothesis: random but valid ATLAS expressions (``strategies.py``), derandomized so CI always runs the same
  ones; ``SOYANG_DIFFERENTIAL_EXAMPLES`` raises the number of examples (default 25 per engine on GiBleed).

Circe is run with its same-day ties broken by event id (``deterministic=True``): circe-be leaves to the database
which of two entry events on the same day a First / Last limit keeps, so PostgreSQL and DuckDB disagree with
each other on such definitions; Soyang must give the deterministic answer. On PostgreSQL nested loops are turned
off for Circe's run only: they change its plan, never its rows, and keep a few random definitions from taking
minutes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from cohorts.expression import parse_expression
from cohorts.runs.generation import cohort_rows, generate_cohort
from cohorts.tests.circe_reference import circe_reference
from cohorts.tests.strategies import cohort_expressions

PHENOTYPES_DIR = Path(__file__).resolve().parent / "phenotypes"
PHENOTYPES = sorted(path.stem for path in PHENOTYPES_DIR.glob("*.json"))

EXAMPLES = int(os.environ.get("SOYANG_DIFFERENTIAL_EXAMPLES", "25"))
#: Synthea27Nj has 28 persons: fewer examples there, for the constructs GiBleed lacks (values, deaths, visits).
SYNTHEA_EXAMPLES = max(1, EXAMPLES // 3)

#: Circe's planner settings on PostgreSQL (see the module docstring).
CIRCE_PG_SETTINGS = {"enable_nestloop": "off"}

#: Soyang and Circe write into different schemas; the cohort id only has to be stable.
COHORT_ID = 7


@dataclass(frozen=True)
class Comparison:
    """Both engines' answers for one definition, and a readable account of how they differ."""

    soyang_rows: list[tuple[Any, ...]]
    circe_rows: list[tuple[Any, ...]]
    soyang_rules: list[tuple[str, int]]
    circe_rules: list[tuple[str, int]]
    soyang_attrition: list[tuple[str, int]]
    circe_attrition: list[tuple[str, int]]

    @property
    def equal(self) -> bool:
        """Same rows, same by-person inclusion counts, same attrition."""
        return (
            self.soyang_rows == self.circe_rows
            and self.soyang_rules == self.circe_rules
            and self.soyang_attrition == self.circe_attrition
        )

    def describe(self, expression: dict[str, Any]) -> str:
        """What differs, with a few rows from each side and the definition as a JSON repro."""
        soyang, circe = set(self.soyang_rows), set(self.circe_rows)
        lines = [
            f"rows: Soyang {len(self.soyang_rows)}, Circe {len(self.circe_rows)}",
            f"  only in Soyang (first 5): {sorted(soyang - circe)[:5]}",
            f"  only in Circe  (first 5): {sorted(circe - soyang)[:5]}",
        ]
        if self.soyang_rules != self.circe_rules:
            lines.append(f"inclusion rules (by person): Soyang {self.soyang_rules} != Circe {self.circe_rules}")
        if self.soyang_attrition != self.circe_attrition:
            lines.append(f"attrition (by person): Soyang {self.soyang_attrition} != Circe {self.circe_attrition}")
        lines.append("definition: " + json.dumps(expression, separators=(",", ":")))
        return "\n".join(lines)


def compare_with_circe(cdm: Any, expression: dict[str, Any], *, cohort_id: int = COHORT_ID) -> Comparison:
    """Generate ``expression`` with Soyang and with Circe on ``cdm`` (a root-conftest ``LoadedCdm``) and compare."""
    engine = cdm.engine
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    result = generate_cohort(engine, parse_expression(expression), cohort_id=cohort_id, **schemas)
    rows = [tuple(row) for row in cohort_rows(engine, results_schema=cdm.results_schema, cohort_id=cohort_id)]
    reference = circe_reference(
        engine,
        expression,
        cohort_id=cohort_id,
        deterministic=True,
        postgresql_settings=CIRCE_PG_SETTINGS,
        **schemas,
    )
    return Comparison(
        soyang_rows=rows,
        circe_rows=[tuple(row) for row in reference.rows],
        soyang_rules=[(name, int(n)) for name, n in result.inclusion_rules],
        circe_rules=[(rule["name"], rule["count"]) for rule in reference.by_person["inclusion_rules"]],
        soyang_attrition=[(name, int(n)) for name, n in result.attrition],
        circe_attrition=[(step["name"], step["count"]) for step in reference.by_person["attrition"]],
    )


def assert_same_as_circe(cdm: Any, expression: dict[str, Any]) -> None:
    """Fail with a repro when Soyang and Circe differ on ``expression``."""
    comparison = compare_with_circe(cdm, expression)
    assert comparison.equal, f"Soyang and Circe differ on {cdm.kind}:\n" + comparison.describe(expression)


@pytest.mark.slow
@pytest.mark.parametrize("name", PHENOTYPES)
def test_public_phenotype_matches_circe(cdm_gibleed: Any, name: str) -> None:
    expression = json.loads((PHENOTYPES_DIR / f"{name}.json").read_text())
    assert_same_as_circe(cdm_gibleed, expression)


def test_phenotype_folder_holds_the_public_definitions() -> None:
    # The parametrized test above would silently run nothing if the folder were emptied.
    assert len(PHENOTYPES) >= 4


_HYPOTHESIS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "print_blob": False,
    # Session-scoped CDM fixtures are shared by all examples on purpose (loading is the expensive part), and even
    # the smallest generated definition is a whole ATLAS document, larger than hypothesis expects of a base case.
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}


@pytest.mark.slow
@settings(max_examples=EXAMPLES, **_HYPOTHESIS)
@given(expression=cohort_expressions("gibleed"))
def test_generated_definition_matches_circe_on_gibleed(cdm_gibleed: Any, expression: dict[str, Any]) -> None:
    assert_same_as_circe(cdm_gibleed, expression)


@pytest.mark.slow
@settings(max_examples=SYNTHEA_EXAMPLES, **_HYPOTHESIS)
@given(expression=cohort_expressions("synthea27nj"))
def test_generated_definition_matches_circe_on_synthea(cdm_synthea: Any, expression: dict[str, Any]) -> None:
    assert_same_as_circe(cdm_synthea, expression)
