"""Two versions compared in words (cohorts.definitions.versions), on real ATLAS expressions from the shared oracle.

Each test takes one oracle definition as version 1, edits it the way a researcher would in the builder or in
ATLAS, and checks the sentence that says so — and that nothing else is said.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cohorts.definitions.versions import expression_diff
from cohorts.tests.conftest import oracle_definition


def texts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [change.text for change in expression_diff(old, new)]


@pytest.mark.parametrize(
    "name",
    ["pl_10606", "pl_12401", "pl_3385", "h01_celecoxib_new_users_custom_era", "h09_concussion_censor_window"],
)
def test_a_version_compared_with_itself_has_no_change(name):
    expression = oracle_definition(name)
    assert expression_diff(expression, copy.deepcopy(expression)) == []


def test_an_added_inclusion_rule_is_named_with_what_it_requires():
    old = oracle_definition("pl_10606")
    new = copy.deepcopy(old)
    new["InclusionRules"] = copy.deepcopy(oracle_definition("pl_2078")["InclusionRules"])
    # The rule refers to a concept set of its own definition: bring that along as the builder would.
    new["ConceptSets"] = old["ConceptSets"] + [
        cs for cs in oracle_definition("pl_2078")["ConceptSets"] if cs["id"] != old["ConceptSets"][0]["id"]
    ]
    said = [t for t in texts(old, new) if t.startswith("Inclusion rule")]
    assert len(said) == 1
    assert said[0].startswith("Inclusion rule 'has no events in prior 'clean window' - 365 days' added")


def test_a_removed_inclusion_rule_is_said_once_and_the_others_are_untouched():
    old = oracle_definition("pl_3385")
    new = copy.deepcopy(old)
    removed = new["InclusionRules"].pop(1)
    assert texts(old, new) == [f"Inclusion rule '{removed['name']}' removed"]


def test_the_observation_window_before_index_reads_old_arrow_new_days():
    old = oracle_definition("pl_12401")
    new = copy.deepcopy(old)
    new["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 365
    old_730 = copy.deepcopy(new)
    old_730["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 730
    assert texts(old, new) == ["Observation window before index: 0 → 365 days"]
    assert texts(new, old_730) == ["Observation window before index: 365 → 730 days"]


def test_concepts_added_to_a_set_are_counted_and_named():
    old = oracle_definition("pl_10606")
    new = copy.deepcopy(old)
    items = new["ConceptSets"][0]["expression"]["items"]
    items += [
        {"concept": {"CONCEPT_ID": 201826, "CONCEPT_NAME": "Type 2 diabetes mellitus"}, "includeDescendants": False},
        {"concept": {"CONCEPT_ID": 320128, "CONCEPT_NAME": "Essential hypertension"}, "includeDescendants": False},
        {"concept": {"CONCEPT_ID": 4112343}, "includeDescendants": False},
    ]
    assert texts(old, new) == [
        "Concept set 'Ulcerative colitis': 3 concepts added (Type 2 diabetes mellitus (201826), "
        "Essential hypertension (320128), 4112343)"
    ]


def test_include_descendants_turned_on_and_a_concept_removed_are_said_in_one_sentence_per_set():
    old = oracle_definition("pl_10606")
    old["ConceptSets"][0]["expression"]["items"][1]["includeDescendants"] = False
    new = copy.deepcopy(old)
    items = new["ConceptSets"][0]["expression"]["items"]
    items[1]["includeDescendants"] = True
    gone = items.pop(0)["concept"]
    turned = items[0]["concept"]
    assert texts(old, new) == [
        f"Concept set 'Ulcerative colitis': 1 concept removed ({gone['CONCEPT_NAME']} ({gone['CONCEPT_ID']})); "
        f"include descendants turned on for {turned['CONCEPT_NAME']} ({turned['CONCEPT_ID']})"
    ]


def test_a_concept_set_change_is_not_repeated_as_a_changed_entry_event():
    """The entry criterion names its concept set; changing the set's content is one change, not three."""
    old = oracle_definition("h01_celecoxib_new_users_custom_era")
    new = copy.deepcopy(old)
    new["ConceptSets"][0]["expression"]["items"][0]["includeMapped"] = True
    said = texts(old, new)
    assert len(said) == 1
    assert said[0].startswith("Concept set 'celecoxib': include mapped turned on for ")


def test_a_new_concept_set_is_added_with_its_size():
    old = oracle_definition("s01_heavy_adults")
    new = copy.deepcopy(old)
    new["ConceptSets"].append(copy.deepcopy(oracle_definition("pl_10606")["ConceptSets"][0]) | {"id": 9})
    said = texts(old, new)
    assert said[0].startswith("Concept set 'Ulcerative colitis' added with 6 concepts (")
    assert said[0].endswith(" and 1 more)")


def test_the_exit_strategy_change_reads_both_exits_in_words():
    old = oracle_definition("h01_celecoxib_new_users_custom_era")
    new = copy.deepcopy(old)
    new["EndStrategy"] = {"DateOffset": {"DateField": "StartDate", "Offset": 30}}
    assert texts(old, new) == [
        "Exit strategy changed: at the end of the continuous drug exposure era → 30 days after the event's StartDate"
    ]


def test_censor_window_and_era_gap_changes_are_said():
    old = oracle_definition("h09_concussion_censor_window")
    new = copy.deepcopy(old)
    new["CensorWindow"]["EndDate"] = "2015-12-31"
    new["CollapseSettings"]["EraPad"] = 30
    assert texts(old, new) == [
        "Censor window end: 2012-12-31 → 2015-12-31",
        "Gap allowed between cohort eras: 0 → 30 days",
    ]


def test_a_changed_rule_says_what_it_now_requires():
    old = oracle_definition("h06_pharyngitis_at_least_two_nested")
    new = copy.deepcopy(old)
    new["InclusionRules"][0]["expression"]["Count"] = 1
    said = texts(old, new)
    assert len(said) == 1
    assert said[0].startswith("Inclusion rule 'two of: acetaminophen, amoxicillin, (culture or strep)' changed: now ")
    assert "at least 1 of" in said[0]
    assert "was at least 2 of" in said[0]


def test_limits_and_reordered_rules_are_said():
    old = oracle_definition("pl_12401")
    new = copy.deepcopy(old)
    new["PrimaryCriteria"]["PrimaryCriteriaLimit"]["Type"] = "All"
    new["InclusionRules"].reverse()
    said = texts(old, new)
    assert f"Entry events per person: {old['PrimaryCriteria']['PrimaryCriteriaLimit']['Type']} → All" in said
    assert said[-1] == "Inclusion rules reordered: " + ", ".join(r["name"] for r in new["InclusionRules"])


def test_a_setting_the_diff_does_not_know_is_still_reported():
    old = oracle_definition("pl_10606")
    new = copy.deepcopy(old)
    new["SomeFutureSetting"] = {"on": True}
    assert texts(old, new) == ["Other settings changed: SomeFutureSetting"]


def test_two_unrelated_oracle_definitions_differ_in_every_part():
    changes = expression_diff(
        oracle_definition("h06_pharyngitis_at_least_two_nested"),
        oracle_definition("h01_celecoxib_new_users_custom_era"),
    )
    sections = {change.section for change in changes}
    assert sections == {"Concept sets", "Entry events", "Inclusion rules", "Exit and censoring"}
