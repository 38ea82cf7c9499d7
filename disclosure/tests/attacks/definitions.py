"""The cohort definitions an attacker writes, as ATLAS/Circe JSON: a condition's first diagnosis narrowed by
rules on sex, age at index and drugs ever taken. Each rule is one a researcher can click together in the builder;
the attacks combine them so that two released counts differ by a small group of persons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MALE, FEMALE = 8507, 8532
SEXES = {MALE: "male", FEMALE: "female"}


def _concept_set(codeset_id: int, concept_ids: Sequence[int], *, descendants: bool) -> dict[str, Any]:
    return {
        "id": codeset_id,
        "name": f"concept set {codeset_id}",
        "expression": {
            "items": [
                {"concept": {"CONCEPT_ID": concept_id}, "isExcluded": False, "includeDescendants": descendants}
                for concept_id in concept_ids
            ]
        },
    }


def first_diagnosis(
    concept_id: int,
    rules: Sequence[dict[str, Any]] = (),
    *,
    listed: Sequence[int] | None = None,
    drugs: Sequence[int] = (),
) -> dict[str, Any]:
    """The first diagnosis of ``concept_id`` (descendants included), with inclusion rules ``rules``.

    ``listed``: write the concept set as these concepts one by one without descendants instead (the same set
    when they are the concept and its descendants). ``drugs``: concept sets 1, 2, … for the drugs the rules
    name (``ever_took(i)`` refers to ``drugs[i - 1]``)."""
    entry = (
        _concept_set(0, listed, descendants=False)
        if listed is not None
        else _concept_set(0, [concept_id], descendants=True)
    )
    concept_sets = [entry] + [_concept_set(i, [drug], descendants=False) for i, drug in enumerate(drugs, start=1)]
    return {
        "ConceptSets": concept_sets,
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "QualifiedLimit": {"Type": "First"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": list(rules),
    }


def _rule(name: str, kind: str, *, demographic: Sequence[dict[str, Any]] = (), criteria: Sequence[Any] = ()) -> dict:
    return {
        "name": name,
        "expression": {
            "Type": kind,
            "CriteriaList": list(criteria),
            "DemographicCriteriaList": list(demographic),
            "Groups": [],
        },
    }


def sex_is(gender_concept_id: int) -> dict[str, Any]:
    name = SEXES[gender_concept_id]
    return _rule(name, "ALL", demographic=[{"Gender": [{"CONCEPT_ID": gender_concept_id, "CONCEPT_NAME": name}]}])


def not_aged(age: int) -> dict[str, Any]:
    """Leaves out the persons aged exactly ``age`` at index."""
    return _rule(f"not aged {age}", "ALL", demographic=[{"Age": {"Value": age, "Op": "!eq"}}])


def not_aged_written_otherwise(age: int) -> dict[str, Any]:
    """``not_aged`` as a different sentence: younger than ``age`` or older than it."""
    return _rule(
        f"not aged {age}",
        "ANY",
        demographic=[{"Age": {"Value": age, "Op": "lt"}}, {"Age": {"Value": age, "Op": "gt"}}],
    )


def aged_at_least(age: int) -> dict[str, Any]:
    return _rule(f"aged {age} or more", "ALL", demographic=[{"Age": {"Value": age, "Op": "gte"}}])


def aged_at_least_or_took(age: int, codeset_id: int) -> dict[str, Any]:
    """The tracker's rule: aged ``age`` or more, or ever exposed to the drug of concept set ``codeset_id``."""
    ever = {
        "Criteria": {"DrugExposure": {"CodesetId": codeset_id}},
        "StartWindow": {"Start": {"Coeff": -1}, "End": {"Coeff": 1}},
        "IgnoreObservationPeriod": True,
        "Occurrence": {"Type": 2, "Count": 1},
    }
    return _rule(
        f"aged {age} or more, or took drug {codeset_id}",
        "ANY",
        demographic=[{"Age": {"Value": age, "Op": "gte"}}],
        criteria=[ever],
    )
