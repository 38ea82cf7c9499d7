"""Cohort expressions and concepts the tests of several modules share (pages, API, compiler, authorization)."""

from __future__ import annotations

from typing import Any

#: A one-criterion definition: the first type 2 diabetes diagnosis.
EXPRESSION: dict[str, Any] = {
    "ConceptSets": [
        {
            "id": 0,
            "name": "t2dm",
            "expression": {"items": [{"concept": {"CONCEPT_ID": 201826}, "includeDescendants": True}]},
        }
    ],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "First"},
    },
    "QualifiedLimit": {"Type": "First"},
    "ExpressionLimit": {"Type": "First"},
    "InclusionRules": [],
}


def minimal(**overrides: Any) -> dict[str, Any]:
    """A small valid expression: first condition of concept set 0."""
    expression: dict[str, Any] = {
        "ConceptSets": [
            {"id": 0, "name": "cs", "expression": {"items": [{"concept": {"CONCEPT_ID": 201826}}]}},
        ],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "InclusionRules": [],
    }
    expression.update(overrides)
    return expression


def rule(group: dict[str, Any], name: str = "rule") -> dict[str, Any]:
    return {"name": name, "expression": group}


def window_criterion(codeset_id: int = 0, days: Any = 30, occurrence: Any = None) -> dict[str, Any]:
    return {
        "Criteria": {"DrugExposure": {"CodesetId": codeset_id}},
        "StartWindow": {"Start": {"Days": days, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}},
        "Occurrence": occurrence if occurrence is not None else {"Type": 2, "Count": 1},
    }


#: Concepts of GiBleed's vocabulary (cohorts/tests/concept_fixtures.py loads it).
GI_BLEED = 192671  # 479 records, 479 persons in GiBleed
ASTHMA = 317009  # 5 records, 5 persons: under the threshold
CHILDHOOD_ASTHMA = 4051466
GI_BLEED_ICD10 = 35208414

#: A concept set: asthma and its descendants, childhood asthma excluded.
ITEMS = [
    {"concept": {"CONCEPT_ID": ASTHMA}, "includeDescendants": True},
    {"concept": {"CONCEPT_ID": CHILDHOOD_ASTHMA}, "isExcluded": True},
]
