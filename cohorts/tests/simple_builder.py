"""A terse way for tests to write cohort expressions: the simple spec of the form the builder page had before the
block builder (one entry concept set, age, gender, a few "at least k events in the D days before" rules), turned into
the ATLAS/Circe JSON such a definition was saved as.

Test code only: the portal builds expressions in the block builder (cohorts/definitions/builder.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cohorts.expression.domains import DOMAINS as CIRCE_DOMAINS

#: Spec domain → Circe criterion name (the values of the old form's domain select).
DOMAINS: dict[str, str] = {
    "condition": "ConditionOccurrence",
    "drug": "DrugExposure",
    "measurement": "Measurement",
    "procedure": "ProcedureOccurrence",
    "observation": "Observation",
    "visit": "VisitOccurrence",
}

#: OMOP gender concepts offered by the form.
GENDERS: dict[int, str] = {8507: "male", 8532: "female"}

MAX_RULES = 5
MAX_CONCEPTS = 200


def _words(domain: str) -> str:
    return CIRCE_DOMAINS[DOMAINS[domain]].words


class BuilderError(ValueError):
    """What the builder cannot turn into an expression, with the form field it concerns."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field_name = field_name
        super().__init__(message)


def parse_concept_ids(text: str, *, field_name: str = "concepts") -> tuple[int, ...]:
    """Concept ids typed as "201826, 320128" (commas, spaces or new lines); duplicates dropped, order kept."""
    ids: list[int] = []
    for token in re.split(r"[\s,;]+", text.strip()):
        if not token:
            continue
        if not token.isdigit() or int(token) <= 0:
            raise BuilderError(field_name, f"“{token}” is not a concept id (a positive whole number).")
        if int(token) not in ids:
            ids.append(int(token))
    if len(ids) > MAX_CONCEPTS:
        raise BuilderError(field_name, f"At most {MAX_CONCEPTS} concepts per concept set.")
    return tuple(ids)


@dataclass(frozen=True)
class RuleSpec:
    """Has at least ``at_least`` ``domain`` events of ``concept_ids`` in the ``days_before`` days before index."""

    domain: str
    concept_ids: tuple[int, ...]
    at_least: int = 1
    days_before: int = 365
    name: str = ""


@dataclass(frozen=True)
class BuilderSpec:
    """Everything the simple builder asks for."""

    entry_domain: str
    entry_concept_ids: tuple[int, ...]
    first_only: bool = True
    include_descendants: bool = True
    age_min: int | None = None
    age_max: int | None = None
    gender_concept_ids: tuple[int, ...] = ()
    rules: tuple[RuleSpec, ...] = field(default_factory=tuple)


def _check(spec: BuilderSpec) -> None:
    if spec.entry_domain not in DOMAINS:
        raise BuilderError("entry_domain", "Choose a domain.")
    if not spec.entry_concept_ids:
        raise BuilderError("entry_concepts", "Give at least one concept id for the entry event.")
    for age, name in ((spec.age_min, "age_min"), (spec.age_max, "age_max")):
        if age is not None and not 0 <= age <= 150:
            raise BuilderError(name, "An age is between 0 and 150 years.")
    if spec.age_min is not None and spec.age_max is not None and spec.age_min > spec.age_max:
        raise BuilderError("age_max", "The maximum age is below the minimum age.")
    unknown = [g for g in spec.gender_concept_ids if g not in GENDERS]
    if unknown:
        raise BuilderError("gender", f"Unknown gender concept {unknown[0]}.")
    if len(spec.rules) > MAX_RULES:
        raise BuilderError("rules", f"At most {MAX_RULES} rules.")
    for rule in spec.rules:
        if rule.domain not in DOMAINS:
            raise BuilderError("rules", "Each rule needs a domain.")
        if not rule.concept_ids:
            raise BuilderError("rules", "Each rule needs at least one concept id.")
        if rule.at_least < 1 or rule.days_before < 0:
            raise BuilderError("rules", "A rule counts at least 1 event in 0 or more days before the index date.")


def _concept_set(codeset_id: int, name: str, concept_ids: Sequence[int], descendants: bool) -> dict[str, Any]:
    return {
        "id": codeset_id,
        "name": name,
        "expression": {
            "items": [
                {
                    "concept": {"CONCEPT_ID": concept_id},
                    "isExcluded": False,
                    "includeDescendants": descendants,
                    "includeMapped": False,
                }
                for concept_id in concept_ids
            ]
        },
    }


def _rule_name(rule: RuleSpec) -> str:
    if rule.name.strip():
        return rule.name.strip()
    events = "event" if rule.at_least == 1 else "events"
    return f"at least {rule.at_least} {_words(rule.domain)} {events} in the {rule.days_before} days before"


def _age_range(age_min: int | None, age_max: int | None) -> dict[str, Any]:
    if age_min is not None and age_max is not None:
        return {"Value": age_min, "Op": "bt", "Extent": age_max}
    if age_min is not None:
        return {"Value": age_min, "Op": "gte"}
    return {"Value": age_max, "Op": "lte"}


def build_expression(spec: BuilderSpec) -> dict[str, Any]:
    """ATLAS/Circe JSON for ``spec`` (raises ``BuilderError`` on what makes no sense).

    Meaning, in Circe's terms:
    - entry events: events of the domain in concept set 0 (descendants included when asked); "first only" adds
      ``First`` (the first such event in the person's history) and keeps one event per person;
    - age and gender: one inclusion rule of demographic criteria evaluated at the index event, so the attrition
      shows how many persons it removes;
    - each rule: an inclusion rule with a correlated criterion counted from D days before the index start date up
      to the index date itself (``Start -D … End 0``), at least k occurrences;
    - without "first only", every entry event is a candidate and the person enters at the earliest event meeting
      every rule (qualified limit All, expression limit First); cohort exit: the end of observation.
    """
    _check(spec)
    entry_circe = DOMAINS[spec.entry_domain]
    concept_sets = [
        _concept_set(0, f"entry {_words(spec.entry_domain)}", spec.entry_concept_ids, spec.include_descendants)
    ]
    entry: dict[str, Any] = {"CodesetId": 0}
    if spec.first_only:
        entry["First"] = True
    limit = "First" if spec.first_only else "All"

    inclusion_rules: list[dict[str, Any]] = []
    if spec.age_min is not None or spec.age_max is not None or spec.gender_concept_ids:
        demographic: dict[str, Any] = {}
        parts = []
        if spec.age_min is not None or spec.age_max is not None:
            demographic["Age"] = _age_range(spec.age_min, spec.age_max)
            parts.append(_age_words(spec.age_min, spec.age_max))
        if spec.gender_concept_ids:
            demographic["Gender"] = [
                {"CONCEPT_ID": g, "CONCEPT_NAME": GENDERS[g].upper()} for g in spec.gender_concept_ids
            ]
            parts.append(" or ".join(GENDERS[g] for g in spec.gender_concept_ids))
        inclusion_rules.append(
            {
                "name": ", ".join(parts),
                "expression": {
                    "Type": "ALL",
                    "CriteriaList": [],
                    "DemographicCriteriaList": [demographic],
                    "Groups": [],
                },
            }
        )
    for i, rule in enumerate(spec.rules, start=1):
        circe = DOMAINS[rule.domain]
        concept_sets.append(
            _concept_set(i, f"rule {i} {_words(rule.domain)}", rule.concept_ids, spec.include_descendants)
        )
        inclusion_rules.append(
            {
                "name": _rule_name(rule),
                "expression": {
                    "Type": "ALL",
                    "CriteriaList": [
                        {
                            "Criteria": {circe: {"CodesetId": i}},
                            "StartWindow": {
                                "Start": {"Days": rule.days_before, "Coeff": -1},
                                "End": {"Days": 0, "Coeff": 1},
                                "UseIndexEnd": False,
                                "UseEventEnd": False,
                            },
                            "Occurrence": {"Type": 2, "Count": rule.at_least},
                        }
                    ],
                    "DemographicCriteriaList": [],
                    "Groups": [],
                },
            }
        )
    return {
        "ConceptSets": concept_sets,
        "PrimaryCriteria": {
            "CriteriaList": [{entry_circe: entry}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": limit},
        },
        "QualifiedLimit": {"Type": limit},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": inclusion_rules,
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "CensorWindow": {},
        "cdmVersionRange": ">=5.0.0",
    }


def _age_words(age_min: int | None, age_max: int | None) -> str:
    if age_min is not None and age_max is not None:
        return f"aged {age_min} to {age_max}"
    if age_min is not None:
        return f"aged {age_min} or older"
    return f"aged {age_max} or younger"
