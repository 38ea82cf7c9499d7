"""The attrition's initial row and Circe's by-event statistics come out of the counting transaction with the cell
keys of what they count, on PostgreSQL and DuckDB, alike on the count path and the generation path.

The expected numbers are read from the same transaction's qualified events (one row per event and its inclusion
mask, before the temp tables are dropped) and worked out here in Python: the initial persons and events, each
rule's events on its own and rules 1..k together, and their keys — for persons the sum of their record keys, for
events the sum over the events of each event's person's record key, modulo 256.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from cohorts.compiler.context import INCLUSION_EVENTS
from cohorts.runs.generation import count_cohort, generate_cohort
from disclosure.cellkey import record_key, record_key_table_build
from warehouse.engines import quote_ident

SECRET = b"record-key secret of the attrition test site"
PHARYNGITIS = 4112343  # acute viral pharyngitis: several diagnoses per person in GiBleed

RULES = [
    ("aged 18 or more", {"DemographicCriteriaList": [{"Age": {"Value": 18, "Op": "gte"}}]}),
    ("female", {"DemographicCriteriaList": [{"Gender": [{"CONCEPT_ID": 8532}]}]}),
    ("aged under 60", {"DemographicCriteriaList": [{"Age": {"Value": 60, "Op": "lt"}}]}),
]

EXPRESSION: dict[str, Any] = {
    "ConceptSets": [
        {"id": 0, "name": "pharyngitis", "expression": {"items": [{"concept": {"CONCEPT_ID": PHARYNGITIS}}]}}
    ],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "All"},
    },
    "QualifiedLimit": {"Type": "All"},
    "ExpressionLimit": {"Type": "All"},
    "InclusionRules": [
        {"name": name, "expression": {"Type": "ALL", "CriteriaList": [], "Groups": [], **group}}
        for name, group in RULES
    ],
}


@pytest.fixture
def keyed(cdm_gibleed: Any) -> Any:
    """A connection to GiBleed with a temporary record-key table for SECRET, and the record keys by person."""
    engine = cdm_gibleed.connect()
    person_table = f"{quote_ident(cdm_gibleed.cdm_schema)}.person"
    record_key_table_build(engine, secret=SECRET, person_table=person_table, table="attrition_keys", temporary=True)
    yield cdm_gibleed, engine
    engine.close()


def _expected(events: list[tuple[int, int]]) -> dict[str, Any]:
    """What the counts and keys must be, from the qualified events' ``(person_id, mask)``."""
    keys = {person: record_key(SECRET, person) for person in {p for p, _ in events}}
    alone: dict[int, list[int]] = defaultdict(list)
    together: dict[int, list[int]] = defaultdict(list)
    for person, mask in events:
        for i in range(len(RULES)):
            if mask & (1 << i):
                alone[i].append(keys[person])
            upto = (1 << (i + 1)) - 1
            if mask & upto == upto:
                together[i].append(keys[person])
    names = [name for name, _ in RULES]
    return {
        "initial_persons": (len(keys), sum(keys.values()) % 256),
        "initial_events": (len(events), sum(keys[p] for p, _ in events) % 256),
        "inclusion_rules": [(names[i], len(alone[i])) for i in range(len(RULES))],
        "inclusion_rule_keys": [sum(alone[i]) % 256 for i in range(len(RULES))],
        "attrition": [(names[i], len(together[i])) for i in range(len(RULES))],
        "attrition_keys": [sum(together[i]) % 256 for i in range(len(RULES))],
    }


def test_initial_and_by_event_counts_and_keys_are_those_of_the_qualified_events(keyed: Any) -> None:
    cdm, engine = keyed
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    seen: list[tuple[int, int]] = []

    def describe(engine: Any, cohort: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        # In the count's transaction, before the temp tables go: the qualified events and their masks.
        seen.extend((int(p), int(m)) for p, m in engine.fetchall(f"SELECT person_id, mask FROM {INCLUSION_EVENTS}"))
        return {}

    counted = count_cohort(engine, EXPRESSION, record_keys="attrition_keys", describe=describe, **schemas)
    expected = _expected(seen)

    assert (counted.initial_persons, counted.initial_persons_key) == expected["initial_persons"]
    by_event = counted.by_event
    assert (by_event.initial, by_event.initial_key) == expected["initial_events"]
    assert by_event.inclusion_rules == expected["inclusion_rules"]
    assert by_event.inclusion_rule_keys == expected["inclusion_rule_keys"]
    assert by_event.attrition == expected["attrition"]
    assert by_event.attrition_keys == expected["attrition_keys"]
    # The case means something: persons have several events, and every rule removes some.
    assert by_event.initial > counted.initial_persons > counted.attrition[0][1] > counted.attrition[-1][1] > 0
    assert by_event.initial > by_event.attrition[0][1] > by_event.attrition[1][1] > by_event.attrition[2][1] > 0
    assert counted.unkeyed == 0

    # Without ``describe`` (DuckDB: the one-statement count) and on the generation path: the same numbers.
    again = count_cohort(engine, EXPRESSION, record_keys="attrition_keys", **schemas)
    generated = generate_cohort(engine, EXPRESSION, cohort_id=931_001, record_keys="attrition_keys", **schemas)
    for other in (again, generated):
        assert (other.initial_persons, other.initial_persons_key) == expected["initial_persons"]
        assert other.by_event == by_event
        assert other.attrition == counted.attrition and other.attrition_keys == counted.attrition_keys
        assert other.inclusion_rules == counted.inclusion_rules
        assert other.inclusion_rule_keys == counted.inclusion_rule_keys
        assert other.persons_key == counted.persons_key


def test_without_inclusion_rules_the_initial_row_is_every_qualified_event(keyed: Any) -> None:
    cdm, engine = keyed
    schemas = {
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
    }
    expression = {**EXPRESSION, "InclusionRules": []}
    schema = quote_ident(cdm.cdm_schema)
    events = engine.fetchall(
        f"SELECT c.person_id FROM {schema}.condition_occurrence c JOIN {schema}.observation_period o "
        "ON o.person_id = c.person_id AND c.condition_start_date BETWEEN o.observation_period_start_date "
        "AND o.observation_period_end_date WHERE c.condition_concept_id = %(concept)s",
        {"concept": PHARYNGITIS},
    )
    keys = [record_key(SECRET, int(p)) for (p,) in events]
    persons = {int(p) for (p,) in events}
    for result in (
        count_cohort(engine, expression, record_keys="attrition_keys", **schemas),
        generate_cohort(engine, expression, cohort_id=931_002, record_keys="attrition_keys", **schemas),
    ):
        assert (result.by_event.initial, result.by_event.initial_key) == (len(events), sum(keys) % 256)
        assert (result.initial_persons, result.initial_persons_key) == (
            len(persons),
            sum(record_key(SECRET, p) for p in persons) % 256,
        )
        assert result.by_event.attrition == [] and result.attrition == []
