"""The builder warns of what is valid but almost surely a mistake, and still saves it: a criterion whose domain
does not match its concepts' domains (looked up in the portal's vocabulary), an empty concept set in use, a window
that starts after it ends, and demographic rules that cannot all hold. Each warning says what is wrong and how to
fix it, beside its block; the describe, save and create answers carry them.

People (accounts.tests.fixtures): alice owns the project.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create
from cohorts.definitions.warnings import expression_warnings
from cohorts.tests.conftest import oracle_definition, oracle_manifest
from warehouse.models import Concept

pytestmark = pytest.mark.django_db

T2DM, METFORMIN, HBA1C, UNKNOWN = 201826, 1503297, 3004410, 99_999_001
MALE, FEMALE = 8507, 8532


@pytest.fixture
def vocabulary() -> None:
    for concept_id, name, domain in (
        (T2DM, "Type 2 diabetes mellitus", "Condition"),
        (METFORMIN, "metformin", "Drug"),
        (HBA1C, "Hemoglobin A1c", "Measurement"),
    ):
        Concept.objects.create(
            concept_id=concept_id,
            concept_name=name,
            domain_id=domain,
            vocabulary_id="Test",
            concept_class_id="Test",
            concept_code=str(concept_id),
        )


def concept_set(codeset_id: int, name: str, *concept_ids: int) -> dict[str, Any]:
    items = [{"concept": {"CONCEPT_ID": c}, "includeDescendants": True} for c in concept_ids]
    return {"id": codeset_id, "name": name, "expression": {"items": items}}


def expression(entry: dict[str, Any], *sets: dict[str, Any], rules: list[Any] | None = None) -> dict[str, Any]:
    return {
        "ConceptSets": list(sets),
        "PrimaryCriteria": {
            "CriteriaList": [entry],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "QualifiedLimit": {"Type": "First"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": rules or [],
    }


def diabetes(rules: list[Any] | None = None) -> dict[str, Any]:
    return expression(
        {"ConditionOccurrence": {"CodesetId": 0}},
        concept_set(0, "Type 2 diabetes", T2DM),
        concept_set(1, "Metformin", METFORMIN),
        rules=rules,
    )


def group(type_: str = "ALL", criteria: list[Any] | None = None, demographics: list[Any] | None = None) -> Any:
    return {"Type": type_, "CriteriaList": criteria or [], "DemographicCriteriaList": demographics or [], "Groups": []}


def metformin_within(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    return {
        "Criteria": {"DrugExposure": {"CodesetId": 1}},
        "StartWindow": {"Start": start, "End": end, "UseIndexEnd": False, "UseEventEnd": False},
        "Occurrence": {"Type": 2, "Count": 1},
    }


def codes(warnings: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(w["block"], w["code"]) for w in warnings]


def test_a_well_made_definition_has_no_warning(vocabulary):
    window = metformin_within({"Days": 365, "Coeff": -1}, {"Days": 0, "Coeff": 1})
    age = {"Age": {"Op": "gte", "Value": 18}}
    rules = [{"name": "metformin before", "expression": group(criteria=[window], demographics=[age])}]
    assert expression_warnings(diabetes(rules)) == []


def test_a_condition_criterion_with_a_set_of_drugs_is_warned_of_and_told_how_to_fix_it(vocabulary):
    wrong = expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Metformin", METFORMIN))
    (warning,) = expression_warnings(wrong)
    assert (warning["block"], warning["code"]) == ("entry", "domain-mismatch")
    assert warning["path"] == "PrimaryCriteria.CriteriaList[0].ConditionOccurrence"
    assert warning["message"] == (
        "The condition criterion uses the concept set “Metformin”, whose concepts are Drug concepts "
        f"(metformin ({METFORMIN})): condition records never hold them, so this criterion counts nobody. "
        "Choose the domain “drug exposure” for this criterion, or a concept set of condition concepts."
    )


def test_a_set_mixing_domains_is_warned_of_for_the_concepts_the_criterion_never_finds(vocabulary):
    mixed = expression({"Measurement": {"CodesetId": 0}}, concept_set(0, "Diabetes workup", HBA1C, T2DM, METFORMIN))
    (warning,) = expression_warnings(mixed)
    assert warning["code"] == "domain-mismatch"
    assert "but 2 of its concepts are Condition or Drug concepts" in warning["message"]
    assert "Choose the matching domain for this criterion" in warning["message"]


def test_a_concept_the_vocabulary_does_not_hold_is_not_a_mismatch(vocabulary):
    unknown = expression({"DrugExposure": {"CodesetId": 0}}, concept_set(0, "Local drug", UNKNOWN, METFORMIN))
    assert expression_warnings(unknown) == []


def test_criteria_in_rules_and_censoring_are_checked_too_in_their_own_block(vocabulary):
    wrong_rule = group(criteria=[metformin_within({"Days": 30, "Coeff": -1}, {"Days": 0, "Coeff": 1})])
    wrong_rule["CriteriaList"][0]["Criteria"] = {"ProcedureOccurrence": {"CodesetId": 1}}
    definition = diabetes([{"name": "r", "expression": wrong_rule}])
    definition["CensoringCriteria"] = [{"Measurement": {"CodesetId": 0}}]
    assert codes(expression_warnings(definition)) == [("rule-0", "domain-mismatch"), ("exit", "domain-mismatch")]


def test_an_empty_concept_set_in_use_is_warned_of_and_an_unused_one_is_not(vocabulary):
    empty = expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Entry concepts"))
    (warning,) = expression_warnings(empty)
    assert (warning["block"], warning["code"]) == ("entry", "empty-concept-set")
    assert warning["message"] == (
        "The condition criterion uses the concept set “Entry concepts”, which has no concepts yet: it matches "
        "nobody. Add concepts to the set, or choose another set."
    )
    all_excluded = concept_set(0, "Only exclusions", T2DM)
    all_excluded["expression"]["items"][0]["isExcluded"] = True
    (warning,) = expression_warnings(expression({"ConditionOccurrence": {"CodesetId": 0}}, all_excluded))
    assert warning["code"] == "empty-concept-set"
    assert "whose concepts are all marked “exclude”: it matches nobody" in warning["message"]
    unused = diabetes()
    unused["ConceptSets"].append(concept_set(2, "Not used yet"))
    assert expression_warnings(unused) == []


@pytest.mark.parametrize(
    ("start", "end", "impossible"),
    [
        ({"Days": 30, "Coeff": 1}, {"Days": 10, "Coeff": -1}, True),  # 30 days after … 10 days before
        ({"Days": 10, "Coeff": -1}, {"Days": 30, "Coeff": -1}, True),  # 10 days before … 30 days before
        ({"Days": 40, "Coeff": 1}, {"Days": 20, "Coeff": 1}, True),  # 40 days after … 20 days after
        ({"Days": 10, "Coeff": -1}, {"Days": 30, "Coeff": 1}, False),
        ({"Days": 0, "Coeff": -1}, {"Days": 0, "Coeff": 1}, False),  # the index date only
        ({"Days": 30, "Coeff": 1}, {"Coeff": 1}, False),  # an open end is never impossible
        ({"Coeff": -1}, {"Days": 10, "Coeff": -1}, False),
    ],
)
def test_a_window_that_starts_after_it_ends_is_warned_of(vocabulary, start, end, impossible):
    rules = [{"name": "r", "expression": group(criteria=[metformin_within(start, end)])}]
    warnings = expression_warnings(diabetes(rules))
    assert codes(warnings) == ([("rule-0", "impossible-window")] if impossible else [])
    if impossible and start == {"Days": 30, "Coeff": 1}:
        assert warnings[0]["message"] == (
            "The window “starting” starts at 30 days after the index date but ends at 10 days before the index "
            "date, which is earlier: no event can fall in it. Swap the two ends, or change “days before” / "
            "“days after”."
        )
        assert warnings[0]["path"] == "InclusionRules[0].expression.CriteriaList[0].StartWindow"


def test_an_impossible_end_window_is_warned_of_as_well(vocabulary):
    correlated = metformin_within({"Days": 365, "Coeff": -1}, {"Days": 0, "Coeff": 1})
    correlated["EndWindow"] = {"Start": {"Days": 5, "Coeff": 1}, "End": {"Days": 5, "Coeff": -1}}
    warnings = expression_warnings(diabetes([{"name": "r", "expression": group(criteria=[correlated])}]))
    assert [w["path"] for w in warnings] == ["InclusionRules[0].expression.CriteriaList[0].EndWindow"]


def test_ages_that_cannot_all_hold_in_one_all_group_are_warned_of_in_that_rule(vocabulary):
    old, young = {"Age": {"Op": "gte", "Value": 65}}, {"Age": {"Op": "lt", "Value": 18}}
    (warning,) = expression_warnings(diabetes([{"name": "r", "expression": group(demographics=[old, young])}]))
    assert (warning["block"], warning["code"]) == ("rule-0", "contradictory-age")
    assert warning["message"] == (
        "These age rules cannot all hold (rule 1: 65 or more; rule 1: below 18): nobody has such an age at the "
        "index date. Change or remove one of them."
    )
    # Where any one member is enough, they do not contradict.
    assert expression_warnings(diabetes([{"name": "r", "expression": group("ANY", demographics=[old, young])}])) == []


def test_ages_in_two_rules_contradict_too_since_every_rule_must_hold(vocabulary):
    rules = [
        {"name": "old", "expression": group(demographics=[{"Age": {"Op": "bt", "Value": 65, "Extent": 90}}])},
        {"name": "young", "expression": group(demographics=[{"Age": {"Op": "lte", "Value": 64}}])},
    ]
    assert codes(expression_warnings(diabetes(rules))) == [("rules", "contradictory-age")]
    rules[1]["expression"]["DemographicCriteriaList"] = [{"Age": {"Op": "lte", "Value": 65}}]  # 65 in both
    assert expression_warnings(diabetes(rules)) == []


def test_a_between_range_the_wrong_way_round_matches_no_age(vocabulary):
    backwards = {"Age": {"Op": "bt", "Value": 65, "Extent": 18}}
    rules = [{"name": "r", "expression": group(demographics=[backwards])}]
    assert codes(expression_warnings(diabetes(rules))) == [("rule-0", "contradictory-age")]


def test_gender_rules_excluding_each_other_are_warned_of(vocabulary):
    male = {"Gender": [{"CONCEPT_ID": MALE}]}
    female = {"Gender": [{"CONCEPT_ID": FEMALE}]}
    either = {"Gender": [{"CONCEPT_ID": MALE}, {"CONCEPT_ID": FEMALE}]}
    (warning,) = expression_warnings(diabetes([{"name": "r", "expression": group(demographics=[male, female])}]))
    assert warning["code"] == "contradictory-gender"
    assert "(rule 1: male; rule 1: female)" in warning["message"]
    assert "tick both genders in one rule" in warning["message"]
    assert expression_warnings(diabetes([{"name": "r", "expression": group(demographics=[male, either])}])) == []


def test_the_only_entry_events_age_or_gender_contradicting_a_rule_is_warned_of(vocabulary):
    definition = diabetes([{"name": "r", "expression": group(demographics=[{"Gender": [{"CONCEPT_ID": FEMALE}]}])}])
    entry = definition["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]
    entry["Gender"] = [{"CONCEPT_ID": MALE}]
    entry["Age"] = {"Op": "lt", "Value": 18}
    (warning,) = expression_warnings(definition)
    assert (warning["block"], warning["code"]) == ("rules", "contradictory-gender")
    assert "(the entry event: male; rule 1: female)" in warning["message"]
    definition["InclusionRules"][0]["expression"]["DemographicCriteriaList"] = [{"Age": {"Op": "gte", "Value": 65}}]
    assert codes(expression_warnings(definition)) == [("rules", "contradictory-age")]
    # With a second entry event a person may enter by it: the first one's age and gender are not required.
    definition["PrimaryCriteria"]["CriteriaList"].append({"DrugExposure": {"CodesetId": 1}})
    assert expression_warnings(definition) == []


def test_warnings_are_in_korean_for_a_korean_reader(vocabulary):
    wrong = expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Metformin", METFORMIN))
    with translation.override("ko"):
        (warning,) = expression_warnings(wrong)
    assert "Metformin" in warning["message"]
    assert "criterion" not in warning["message"] and "concept set" not in warning["message"]


@pytest.mark.parametrize("name", [entry["name"] for entry in oracle_manifest()][:40])
def test_every_oracle_definition_gets_its_warnings_without_failing(vocabulary, name):
    assert isinstance(expression_warnings(oracle_definition(name)), list)


@pytest.mark.parametrize(
    "draft",
    [{}, {"ConceptSets": "x"}, {"PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 7}}]}}],
)
def test_drafts_of_any_shape_get_warnings_without_failing(vocabulary, draft):
    assert expression_warnings(draft) == []


# --- through the builder's endpoints ----------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json")


def test_the_validation_endpoint_says_valid_and_gives_the_warnings_beside_their_blocks(vocabulary, alice, project):
    wrong = expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Metformin", METFORMIN))
    response = post_json(client_for(alice), reverse("cohorts:builder_describe"), {"expression": wrong})
    assert response.status_code == 200
    data = response.json()
    assert data["valid"] is True and data["errors"] == []
    assert codes(data["warnings"]) == [("entry", "domain-mismatch")]
    assert not CohortDefinition.objects.exists()


def test_a_definition_with_warnings_is_created_and_saved_and_the_answers_repeat_them(vocabulary, alice, project):
    wrong = expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Metformin", METFORMIN))
    client = client_for(alice)
    created = post_json(
        client, reverse("cohorts:builder_create"), {"name": "Oops", "project": project.pk, "expression": wrong}
    )
    assert created.status_code == 201
    assert codes(created.json()["warnings"]) == [("entry", "domain-mismatch")]
    definition = CohortDefinition.objects.get()
    fixed = copy.deepcopy(wrong)
    fixed["PrimaryCriteria"]["CriteriaList"] = [{"DrugExposure": {"CodesetId": 0}}]
    saved = post_json(client, reverse("cohorts:builder_save", args=[definition.pk]), {"expression": fixed})
    assert saved.status_code == 201
    assert saved.json()["warnings"] == []
    assert definition.versions.count() == 2


def test_the_builder_page_starts_with_the_warnings_of_what_it_loads(vocabulary, alice, project):
    definition = definition_create(
        owner=alice,
        name="Empty",
        project=project,
        expression=expression({"ConditionOccurrence": {"CodesetId": 0}}, concept_set(0, "Nothing yet")),
    )
    page = client_for(alice).get(reverse("cohorts:definition_edit", args=[definition.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "empty-concept-set" in body  # in the page's configuration (json_script)
    assert 'data-warnings="entry"' in body
