"""The expression model: lossless round trip of ATLAS JSON, and validation errors that say where and what."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from cohorts.expression import MAX_CRITERIA, ExpressionError, parse_expression
from cohorts.tests.conftest import oracle_definition, oracle_manifest
from cohorts.tests.expressions import minimal, rule, window_criterion

NAMES = [entry["name"] for entry in oracle_manifest()]


def errors_of(expression: Any) -> list[tuple[str, str]]:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(expression)
    return caught.value.errors


@pytest.mark.parametrize("name", NAMES)
def test_every_oracle_definition_round_trips_losslessly(name: str) -> None:
    original = oracle_definition(name)
    parsed = parse_expression(copy.deepcopy(original))
    assert parsed.to_json() == original
    assert json.dumps(parsed.to_json()) == json.dumps(original)  # key order kept too
    assert parse_expression(json.dumps(original)).to_json() == original


def test_unknown_fields_are_kept() -> None:
    expression = minimal(SoyangNote={"by": "alice"}, Title="t")
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["FutureField"] = [1, 2]
    assert parse_expression(expression).to_json() == expression


def test_to_json_is_a_copy_and_nodes_are_immutable() -> None:
    parsed = parse_expression(minimal())
    parsed.to_json()["ConceptSets"].clear()
    assert parsed.to_json()["ConceptSets"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.era_pad = 3  # type: ignore[misc]


def test_typed_nodes_carry_the_values() -> None:
    expression = minimal(
        InclusionRules=[rule({"Type": "AT_LEAST", "Count": 1, "CriteriaList": [window_criterion()]})],
        EndStrategy={"DateOffset": {"DateField": "EndDate", "Offset": 7}},
        CollapseSettings={"CollapseType": "ERA", "EraPad": 30},
        CensorWindow={"StartDate": "2005-01-01", "EndDate": None},
    )
    parsed = parse_expression(expression)
    group = parsed.inclusion_rules[0].expression
    assert (group.type, group.count) == ("AT_LEAST", 1)
    assert group.criteria_list[0].start_window.start.days == 30
    assert group.criteria_list[0].criteria.domain == "DrugExposure"
    assert parsed.end_strategy is not None and parsed.era_pad == 30
    assert parsed.censor_window is not None and str(parsed.censor_window.start_date) == "2005-01-01"
    assert parsed.concept_sets[0].items[0].concept_id == 201826


def test_atlas_variants_are_accepted() -> None:
    expression = minimal(
        InclusionRules=[
            rule({"Type": "all", "CriteriaList": [window_criterion(occurrence={"type": 0, "count": 0})]}),
        ],
        QualifiedLimit={"Type": "LAST"},
    )
    expression["ConceptSets"][0]["expression"]["items"][0]["concept"] = {"concept_id": 201826}
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["First"] = None
    parsed = parse_expression(expression)
    assert parsed.inclusion_rules[0].expression.type == "ALL"
    assert parsed.inclusion_rules[0].expression.criteria_list[0].occurrence.count == 0
    assert parsed.qualified_limit == "LAST"
    assert parsed.primary_criteria.criteria_list[0].get("First") is None


def test_a_bad_window_names_its_path() -> None:
    bad = minimal(
        InclusionRules=[
            rule({"Type": "ALL", "CriteriaList": []}),
            rule({"Type": "ALL", "CriteriaList": []}),
            rule({"Type": "ALL", "CriteriaList": [window_criterion(days="seven")]}),
        ]
    )
    assert errors_of(bad) == [
        ("InclusionRules[2].expression.CriteriaList[0].StartWindow.Start.Days", "expected an integer")
    ]


def test_the_message_lists_every_error() -> None:
    bad = minimal(
        InclusionRules=[
            rule({"Type": "AT_LEAST", "CriteriaList": [window_criterion(codeset_id=9)]}),
            rule({"Type": "ALL", "CriteriaList": [window_criterion(occurrence={"Type": 2, "Count": -1})]}),
        ],
        CollapseSettings={"EraPad": "thirty"},
    )
    errors = dict(errors_of(bad))
    assert errors["InclusionRules[0].expression.Count"] == "expected an integer"
    assert errors["InclusionRules[0].expression.CriteriaList[0].Criteria.DrugExposure.CodesetId"] == (
        "concept set 9 does not exist in ConceptSets"
    )
    assert errors["InclusionRules[1].expression.CriteriaList[0].Occurrence.Count"] == "expected a non-negative integer"
    assert errors["CollapseSettings.EraPad"] == "expected an integer"
    with pytest.raises(ExpressionError, match=r"InclusionRules\[0\]\.expression\.Count: expected an integer"):
        parse_expression(bad)


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (
            lambda e: e["PrimaryCriteria"].update(CriteriaList=[{"Genome": {}}]),
            "PrimaryCriteria.CriteriaList[0]",
            "unknown domain",
        ),
        (
            lambda e: e["PrimaryCriteria"].update(PrimaryCriteriaLimit={"Type": "Random"}),
            "PrimaryCriteria.PrimaryCriteriaLimit.Type",
            "expected one of",
        ),
        (lambda e: e["PrimaryCriteria"].update(CriteriaList=[]), "PrimaryCriteria.CriteriaList", "at least one"),
        (lambda e: e.pop("PrimaryCriteria"), "PrimaryCriteria", "expected an object"),
        (
            lambda e: e.update(EndStrategy={"CustomEra": {"GapDays": 3}}),
            "EndStrategy.CustomEra.DrugCodesetId",
            "expected an integer",
        ),
        (lambda e: e.update(CensorWindow={"StartDate": "2020-13-45"}), "CensorWindow.StartDate", "expected a date"),
        (lambda e: e["ConceptSets"].append(copy.deepcopy(e["ConceptSets"][0])), "ConceptSets[1].id", "used twice"),
        (
            lambda e: e["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"].update(
                Age={"Op": "bt", "Value": 18}
            ),
            "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.Age.Extent",
            "expected a number",
        ),
        (
            lambda e: e["PrimaryCriteria"]["CriteriaList"][0].update({"CustomEra": {}}),
            "PrimaryCriteria.CriteriaList[0]",
            "exactly one domain key",
        ),
    ],
)
def test_invalid_input_is_refused_with_its_path(mutate: Any, path: str, message: str) -> None:
    expression = minimal()
    mutate(expression)
    errors = errors_of(expression)
    assert any(p == path and message in m for p, m in errors), errors


def test_attributes_circe_cannot_run_are_refused() -> None:
    expression = minimal()
    expression["PrimaryCriteria"]["CriteriaList"] = [{"DrugExposure": {"DoseUnit": [{"CONCEPT_ID": 8576}]}}]
    (path, message), *_ = errors_of(expression)
    assert path == "PrimaryCriteria.CriteriaList[0].DrugExposure.DoseUnit"
    assert "no dose_unit_concept_id" in message


def test_unsupported_domains_are_refused() -> None:
    expression = minimal()
    expression["PrimaryCriteria"]["CriteriaList"] = [{"Episode": {}}]
    assert errors_of(expression) == [("PrimaryCriteria.CriteriaList[0].Episode", "the Episode domain is not supported")]


def test_absurdly_deep_nesting_is_refused() -> None:
    group: dict[str, Any] = {"Type": "ALL", "CriteriaList": [window_criterion()]}
    for _ in range(60):
        group = {"Type": "ALL", "Groups": [group]}
    errors = errors_of(minimal(InclusionRules=[rule(group)]))
    assert any("nested too deeply" in message for _, message in errors)


def test_pathologically_deep_json_is_refused_without_recursion_error() -> None:
    deep: Any = 0
    for _ in range(100_000):
        deep = [deep]
    errors = errors_of(minimal(Deep=deep))
    assert errors == [("", "the expression is nested too deeply (more than 50 levels)")]


def test_too_many_criteria_are_refused() -> None:
    group = {"Type": "ANY", "CriteriaList": [window_criterion() for _ in range(MAX_CRITERIA + 1)]}
    errors = errors_of(minimal(InclusionRules=[rule(group)]))
    assert any(f"too many criteria (more than {MAX_CRITERIA})" in message for _, message in errors)


def test_text_that_is_not_json_is_refused() -> None:
    assert errors_of("{not json")[0][1].startswith("not valid JSON")
    assert errors_of("[1, 2]") == [("", "expected a JSON object (a cohort expression)")]
