"""The plain-words sentence under each builder block, what the builder leaves read-only, and where errors go."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohorts.definitions.builder import describe_expression, empty_expression, error_block, unmodelled_fragments
from cohorts.definitions.describe import correlated_words, expression_summary
from cohorts.expression import parse_draft, parse_expression
from cohorts.tests.conftest import oracle_definition, oracle_manifest

HBA1C_RULE: dict[str, Any] = {
    "name": "at least 2 HbA1c above 7% in the year before",
    "expression": {
        "Type": "ALL",
        "CriteriaList": [
            {
                "Criteria": {"Measurement": {"CodesetId": 1, "ValueAsNumber": {"Value": 7, "Op": "gt"}}},
                "StartWindow": {
                    "Start": {"Days": 365, "Coeff": -1},
                    "End": {"Days": 0, "Coeff": 1},
                    "UseIndexEnd": False,
                    "UseEventEnd": False,
                },
                "Occurrence": {"Type": 2, "Count": 2},
            }
        ],
        "DemographicCriteriaList": [{"Age": {"Value": 18, "Op": "gte"}, "Gender": [{"CONCEPT_ID": 8532}]}],
        "Groups": [],
    },
}


def correlated_sentence(expression: dict[str, Any], correlated: dict[str, Any]) -> str:
    """The describer's words for one correlated criterion written as JSON: the describer reads typed nodes, so the
    criterion is parsed as the only one of a rule of ``expression``. Without an Occurrence (which the parser
    requires) it counts at least 1 event, as the builder writes a new criterion."""
    document = {
        **expression,
        "InclusionRules": [
            {"expression": {"Type": "ALL", "CriteriaList": [{"Occurrence": {"Type": 2, "Count": 1}, **correlated}]}}
        ],
    }
    typed = parse_draft(document).expression
    (rule,) = typed.inclusion_rules
    (criterion,) = rule.expression.criteria_list
    return correlated_words(typed, criterion)


def diabetes_with_hba1c() -> dict[str, Any]:
    expression = empty_expression()
    expression["ConceptSets"] = [
        {"id": 0, "name": "Type 2 diabetes", "expression": {"items": [{"concept": {"CONCEPT_ID": 201826}}]}},
        {"id": 1, "name": "HbA1c", "expression": {"items": [{"concept": {"CONCEPT_ID": 3004410}}]}},
    ]
    expression["InclusionRules"] = [copy.deepcopy(HBA1C_RULE)]
    return expression


def test_at_least_two_hba1c_above_7_in_the_year_before_reads_as_such() -> None:
    expression = diabetes_with_hba1c()
    parse_expression(expression)  # buildable: the builder's shape is valid Circe
    sentence = describe_expression(expression)["sentences"]["rule-0"]
    assert sentence == (
        "Keeps the entry events where all of: at least 2 × a measurement of “HbA1c”, with a value above 7, "
        "starting between 365 days before the index date and the index date; "
        "the person is aged 18 or more, female at the index date."
    )


def test_the_entry_sentence_names_the_event_the_limit_and_the_observation_needed() -> None:
    expression = diabetes_with_hba1c()
    expression["PrimaryCriteria"]["ObservationWindow"] = {"PriorDays": 365, "PostDays": 30}
    assert describe_expression(expression)["sentences"]["entry"] == (
        "A person enters the cohort at the earliest of these events: a condition of “Type 2 diabetes”, the first in "
        "the person's history. The event needs at least 365 days of observation before it and 30 days after it. "
        "Of the events that pass the rules, the earliest per person is kept."
    )


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ({"Start": {"Coeff": -1}, "End": {"Days": 0, "Coeff": 1}}, "starting on or before the index date"),
        ({"Start": {"Days": 1, "Coeff": 1}, "End": {"Coeff": 1}}, "starting on or after 1 days after the index date"),
        ({"Start": {"Coeff": -1}, "End": {"Coeff": 1}}, "starting at any time"),
        ({"Start": {"Days": 30, "Coeff": -1}, "End": {"Days": 30, "Coeff": 1}}, "starting between 30 days before "
         "the index date and 30 days after the index date"),
    ],
)  # fmt: skip
def test_time_windows_read_as_before_after_or_any_time(window: dict[str, Any], words: str) -> None:
    correlated = {"Criteria": {"DrugExposure": {}}, "StartWindow": window, "Occurrence": {"Type": 0, "Count": 0}}
    assert correlated_sentence({}, correlated) == f"exactly 0 × any drug exposure, {words}"


def test_restrict_visit_and_ignore_observation_period_are_said() -> None:
    correlated = {
        "Criteria": {"ProcedureOccurrence": {}},
        "StartWindow": {"Start": {"Days": 0, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}},
        "RestrictVisit": True,
        "IgnoreObservationPeriod": True,
    }
    assert correlated_sentence({}, correlated).endswith(", in the same visit, even outside the observation period")


def test_nested_groups_with_at_least_n_read_in_brackets() -> None:
    expression = diabetes_with_hba1c()
    group = expression["InclusionRules"][0]["expression"]
    group["Type"], group["Count"] = "AT_LEAST", 1
    group["DemographicCriteriaList"] = []
    group["Groups"] = [
        {"Type": "ANY", "CriteriaList": [], "DemographicCriteriaList": [{"Gender": [{"CONCEPT_ID": 8507}]}]}
    ]
    sentence = describe_expression(expression)["sentences"]["rule-0"]
    assert sentence.startswith("Keeps the entry events where at least 1 of: at least 2 × a measurement")
    assert sentence.endswith("; (any of: the person is male at the index date).")


def test_exit_sentences_cover_observation_end_offset_custom_era_censoring_pad_and_window() -> None:
    expression = diabetes_with_hba1c()
    assert describe_expression(expression)["sentences"]["exit"] == (
        "The person leaves the cohort at the end of the observation period of the entry event."
    )
    expression["EndStrategy"] = {"DateOffset": {"DateField": "EndDate", "Offset": 14}}
    assert describe_expression(expression)["sentences"]["exit"].startswith(
        "The person leaves the cohort 14 days after the entry event's end date"
    )
    expression["EndStrategy"] = {"CustomEra": {"DrugCodesetId": 1, "GapDays": 30, "Offset": 7}}
    expression["CensoringCriteria"] = [{"Death": {}}]
    expression["CollapseSettings"] = {"CollapseType": "ERA", "EraPad": 3}
    expression["CensorWindow"] = {"StartDate": "2010-01-01"}
    assert describe_expression(expression)["sentences"]["exit"] == (
        "The person leaves the cohort at the end of continuous exposure to “HbA1c” (gaps of up to 30 days bridged), "
        "plus 7 days. They leave earlier at any death. Cohort periods less than 3 days apart are joined. "
        "Cohort periods are cut to 2010-01-01 – …."
    )


def test_concept_set_sentences_count_descendants_mapped_and_excluded() -> None:
    concept_set = {
        "id": 0,
        "name": "x",
        "expression": {
            "items": [
                {"concept": {"CONCEPT_ID": 1}, "includeDescendants": True, "includeMapped": True},
                {"concept": {"CONCEPT_ID": 2}},
                {"concept": {"CONCEPT_ID": 3}, "isExcluded": True},
            ]
        },
    }
    sentences = describe_expression({"ConceptSets": [concept_set]})["sentences"]
    assert sentences["concept-set-0"] == (
        "2 concept(s), 1 with all their descendants, 1 with the source codes mapped to them, minus 1 excluded "
        "concept(s)."
    )


def test_what_the_builder_does_not_show_is_listed_and_empty_values_are_not() -> None:
    expression = diabetes_with_hba1c()
    expression["cdmVersionRange"] = ">=5.0.0"
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["ConditionType"] = [{"CONCEPT_ID": 32020}]
    expression["InclusionRules"][0]["expression"]["CriteriaList"][0]["Occurrence"]["IsDistinct"] = True
    expression["InclusionRules"][0]["expression"]["CriteriaList"][0]["StartWindow"]["UseEventEnd"] = False
    paths = [fragment["path"] for fragment in unmodelled_fragments(expression)]
    assert paths == [
        "cdmVersionRange",
        "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.ConditionType",
        "InclusionRules[0].expression.CriteriaList[0].Occurrence.IsDistinct",
    ]
    assert unmodelled_fragments(expression)[1]["json"].replace("\n", "").replace(" ", "") == '[{"CONCEPT_ID":32020}]'


@pytest.mark.parametrize("name", [entry["name"] for entry in oracle_manifest()])
def test_every_oracle_definition_is_described_and_keeps_the_summary_working(name: str) -> None:
    expression = oracle_definition(name)
    description = describe_expression(expression)
    assert description["sentences"]["entry"].startswith("A person enters the cohort")
    assert len([k for k in description["sentences"] if k.startswith("rule-")]) == len(expression["InclusionRules"])
    assert expression_summary(expression)["entry"]  # other pages' summary is unchanged


@pytest.mark.parametrize(
    ("path", "block"),
    [
        ("ConceptSets[3].expression.items[0].concept.CONCEPT_ID", "concept-set-3"),
        ("PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CodesetId", "entry"),
        ("QualifiedLimit.Type", "entry"),
        ("InclusionRules[12].expression.Groups[0].Count", "rule-12"),
        ("EndStrategy.CustomEra.DrugCodesetId", "exit"),
        ("CensorWindow.StartDate", "exit"),
        ("", "general"),
    ],
)
def test_each_validation_error_belongs_to_a_block(path: str, block: str) -> None:
    assert error_block(path) == block


_KEYS = [
    "ConceptSets", "PrimaryCriteria", "CriteriaList", "InclusionRules", "expression", "items", "concept", "Type",
    "Count", "Groups", "DemographicCriteriaList", "Criteria", "StartWindow", "Start", "End", "Days", "Coeff",
    "Occurrence", "EndStrategy", "DateOffset", "CustomEra", "CensoringCriteria", "CollapseSettings", "CensorWindow",
    "ConditionOccurrence", "Measurement", "ValueAsNumber", "Age", "Gender", "CodesetId", "ObservationWindow",
]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6))
def test_drafts_of_any_shape_are_described_without_failing(draft: dict[str, Any]) -> None:
    description = describe_expression(draft)
    assert isinstance(description["sentences"]["entry"], str)
    assert all(isinstance(fragment["json"], str) for fragment in description["extras"])
