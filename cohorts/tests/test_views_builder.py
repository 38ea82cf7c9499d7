"""The builder's Circe JSON: valid, and counting the same persons on GiBleed as a hand-written equivalent.

The hand-written expressions say the same thing another way (age and gender as attributes of the entry
criterion instead of a demographic inclusion rule), so a wrong window sign, limit or rule layout in the builder
shows up as a different count. Generation runs directly on the PostgreSQL test CDM; no worker needed.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cohorts.definitions.describe import expression_summary
from cohorts.expression import parse_expression
from cohorts.runs.generation import generate_cohort
from cohorts.tests.simple_builder import BuilderError, BuilderSpec, RuleSpec, build_expression, parse_concept_ids

OSTEOARTHRITIS = 80180
ACETAMINOPHEN = 1125315  # ingredient: its clinical drugs are descendants
FEMALE = 8532

_cohort_ids = itertools.count(910_001)


def _concept_set(codeset_id: int, concept_id: int) -> dict[str, Any]:
    return {
        "id": codeset_id,
        "name": f"set {codeset_id}",
        "expression": {
            "items": [{"concept": {"CONCEPT_ID": concept_id}, "includeDescendants": True, "isExcluded": False}]
        },
    }


def hand_written(*, first_only: bool) -> dict[str, Any]:
    limit = "First" if first_only else "All"
    entry: dict[str, Any] = {
        "CodesetId": 0,
        "Age": {"Op": "bt", "Value": 40, "Extent": 90},
        "Gender": [{"CONCEPT_ID": FEMALE}],
    }
    if first_only:
        entry["First"] = True
    return {
        "ConceptSets": [_concept_set(0, OSTEOARTHRITIS), _concept_set(1, ACETAMINOPHEN)],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": entry}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": limit},
        },
        "QualifiedLimit": {"Type": limit},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": [
            {
                "name": "two acetaminophen exposures in the ten years before",
                "expression": {
                    "Type": "ALL",
                    "CriteriaList": [
                        {
                            "Criteria": {"DrugExposure": {"CodesetId": 1}},
                            "StartWindow": {"Start": {"Days": 3650, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}},
                            "Occurrence": {"Type": 2, "Count": 2},
                        }
                    ],
                },
            }
        ],
    }


def built(*, first_only: bool) -> dict[str, Any]:
    return build_expression(
        BuilderSpec(
            entry_domain="condition",
            entry_concept_ids=(OSTEOARTHRITIS,),
            first_only=first_only,
            age_min=40,
            age_max=90,
            gender_concept_ids=(FEMALE,),
            rules=(RuleSpec(domain="drug", concept_ids=(ACETAMINOPHEN,), at_least=2, days_before=3650),),
        )
    )


def count(cdm: Any, expression: dict[str, Any]) -> Any:
    return generate_cohort(
        cdm.engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=next(_cohort_ids),
    )


@pytest.mark.parametrize("first_only", [True, False])
def test_builder_count_on_gibleed_equals_the_hand_written_equivalent(cdm_gibleed_pg, first_only: bool) -> None:
    expression = built(first_only=first_only)
    parse_expression(expression)
    ours = count(cdm_gibleed_pg, expression)
    theirs = count(cdm_gibleed_pg, hand_written(first_only=first_only))
    assert ours.persons == theirs.persons
    assert ours.persons >= 20  # the comparison means something only if enough persons qualify
    # The builder's demographic rule comes first: its attrition step is the persons the entry criterion keeps.
    assert [name for name, _ in ours.attrition] == [
        "aged 40 to 90, female",
        "at least 2 drug exposure events in the 3650 days before",
    ]
    assert ours.attrition[-1][1] == ours.persons


def test_builder_without_demographics_or_rules_is_just_the_entry_event(cdm_gibleed_pg) -> None:
    expression = build_expression(BuilderSpec(entry_domain="condition", entry_concept_ids=(OSTEOARTHRITIS,)))
    assert expression["InclusionRules"] == []
    result = count(cdm_gibleed_pg, expression)
    plain = {
        "ConceptSets": [_concept_set(0, OSTEOARTHRITIS)],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
    }
    assert result.persons == count(cdm_gibleed_pg, plain).persons


@pytest.mark.parametrize("domain", ["condition", "drug", "measurement", "procedure", "observation", "visit"])
def test_every_builder_domain_gives_a_valid_expression(domain: str) -> None:
    expression = build_expression(
        BuilderSpec(
            entry_domain=domain,
            entry_concept_ids=(1, 2),
            rules=(RuleSpec(domain=domain, concept_ids=(3,), at_least=1, days_before=0),),
        )
    )
    parsed = parse_expression(expression)
    assert len(parsed.concept_sets) == 2
    assert expression_summary(expression)["rules"][0]["lines"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (BuilderSpec(entry_domain="condition", entry_concept_ids=()), "entry_concepts"),
        (BuilderSpec(entry_domain="nothing", entry_concept_ids=(1,)), "entry_domain"),
        (BuilderSpec(entry_domain="condition", entry_concept_ids=(1,), age_min=70, age_max=20), "age_max"),
        (BuilderSpec(entry_domain="condition", entry_concept_ids=(1,), gender_concept_ids=(123,)), "gender"),
    ],
)
def test_builder_refuses_what_makes_no_sense(spec: BuilderSpec, field: str) -> None:
    with pytest.raises(BuilderError) as error:
        build_expression(spec)
    assert error.value.field_name == field


def test_concept_ids_are_read_from_commas_spaces_and_lines() -> None:
    assert parse_concept_ids("201826, 320128\n201826;3004410") == (201826, 320128, 3004410)
    with pytest.raises(BuilderError):
        parse_concept_ids("201826, -3")
