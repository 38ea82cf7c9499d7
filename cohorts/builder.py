"""The simple cohort builder of the browser, and the plain-words summary of any expression.

``build_expression`` turns what the builder form asks for (one entry concept set, age, gender, a few "at least k
events in the D days before" rules) into OHDSI ATLAS/Circe JSON, the only format definitions are stored in: a
definition made here exports to ATLAS and back unchanged. ``expression_summary`` goes the other way, for any
expression (built here or imported), and says what it means in sentences.

Plain Python, no Django: the views call it, the tests check its JSON with ``parse_expression`` and count it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Builder domain → (Circe criterion name, words for people). Keys are the values of the form's domain select.
DOMAINS: dict[str, tuple[str, str]] = {
    "condition": ("ConditionOccurrence", "condition"),
    "drug": ("DrugExposure", "drug exposure"),
    "measurement": ("Measurement", "measurement"),
    "procedure": ("ProcedureOccurrence", "procedure"),
    "observation": ("Observation", "observation"),
    "visit": ("VisitOccurrence", "visit"),
}

#: OMOP gender concepts offered by the builder.
GENDERS: dict[int, str] = {8507: "male", 8532: "female"}

MAX_RULES = 5
MAX_CONCEPTS = 200

_CIRCE_WORDS: dict[str, str] = {circe: words for circe, words in DOMAINS.values()} | {
    "ConditionEra": "condition era",
    "DrugEra": "drug era",
    "DoseEra": "dose era",
    "DeviceExposure": "device exposure",
    "Death": "death",
    "ObservationPeriod": "observation period",
    "Specimen": "specimen",
    "PayerPlanPeriod": "payer plan period",
    "VisitDetail": "visit detail",
    "LocationRegion": "location",
}


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
    return f"at least {rule.at_least} {DOMAINS[rule.domain][1]} {events} in the {rule.days_before} days before"


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
    entry_circe, entry_words = DOMAINS[spec.entry_domain]
    concept_sets = [_concept_set(0, f"entry {entry_words}", spec.entry_concept_ids, spec.include_descendants)]
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
        circe, words = DOMAINS[rule.domain]
        concept_sets.append(_concept_set(i, f"rule {i} {words}", rule.concept_ids, spec.include_descendants))
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


# ---------------------------------------------------------------------------------------------------------------
# Plain words for any expression (the detail page). Reads the JSON leniently: it was validated when saved.
# ---------------------------------------------------------------------------------------------------------------


def _age_words(age_min: int | None, age_max: int | None) -> str:
    if age_min is not None and age_max is not None:
        return f"aged {age_min} to {age_max}"
    if age_min is not None:
        return f"aged {age_min} or older"
    return f"aged {age_max} or younger"


def _concept_set_words(expression: dict[str, Any], codeset_id: Any) -> str:
    for concept_set in expression.get("ConceptSets") or []:
        if concept_set.get("id") == codeset_id:
            items = (concept_set.get("expression") or {}).get("items") or []
            ids = [
                str((item.get("concept") or {}).get("CONCEPT_ID", "?"))
                + ("+" if item.get("includeDescendants") else "")
                for item in items
                if not item.get("isExcluded")
            ]
            shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
            return f"“{concept_set.get('name') or f'concept set {codeset_id}'}” ({shown or 'no concept'})"
    return "any concept"


def _criterion_words(expression: dict[str, Any], criterion: dict[str, Any]) -> str:
    if not criterion:
        return "an event"
    domain, attributes = next(iter(criterion.items()))
    attributes = attributes or {}
    words = _CIRCE_WORDS.get(domain, domain)
    text = f"a {words} of {_concept_set_words(expression, attributes.get('CodesetId'))}"
    if attributes.get("First"):
        text += ", the first in the person's history"
    return text


def _endpoint_words(endpoint: dict[str, Any]) -> str:
    days = endpoint.get("Days")
    coeff = endpoint.get("Coeff", -1)
    if days is None:
        return "any time before" if coeff < 0 else "any time after"
    if days == 0:
        return "the index date"
    return f"{days} days {'before' if coeff < 0 else 'after'}"


def _occurrence_words(occurrence: dict[str, Any]) -> str:
    kind = {0: "exactly", 1: "at most", 2: "at least"}.get(occurrence.get("Type", 2), "at least")
    return f"{kind} {occurrence.get('Count', 1)}"


def _group_words(expression: dict[str, Any], group: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for correlated in group.get("CriteriaList") or []:
        window = correlated.get("StartWindow") or {}
        lines.append(
            f"{_occurrence_words(correlated.get('Occurrence') or {})} × "
            f"{_criterion_words(expression, correlated.get('Criteria') or {})}, starting between "
            f"{_endpoint_words(window.get('Start') or {})} and {_endpoint_words(window.get('End') or {})}"
        )
    for demographic in group.get("DemographicCriteriaList") or []:
        parts = []
        age = demographic.get("Age")
        if age:
            op, value, extent = age.get("Op"), age.get("Value"), age.get("Extent")
            parts.append(
                {
                    "bt": f"aged {value} to {extent}",
                    "gte": f"aged {value} or older",
                    "lte": f"aged {value} or younger",
                }.get(op, f"age {op} {value}")
            )
        genders = [str(g.get("CONCEPT_NAME") or g.get("CONCEPT_ID")).lower() for g in demographic.get("Gender") or []]
        if genders:
            parts.append(" or ".join(genders))
        lines.append("the person is " + (", ".join(parts) or "of any age and gender") + " at the index date")
    for nested in group.get("Groups") or []:
        lines.append("a nested group: " + "; ".join(_group_words(expression, nested)))
    return lines


def _group_type_words(group: dict[str, Any]) -> str:
    kind = (group.get("Type") or "ALL").upper()
    count = group.get("Count")
    return {"ALL": "all of", "ANY": "any of", "AT_LEAST": f"at least {count} of", "AT_MOST": f"at most {count} of"}.get(
        kind, kind.lower()
    )


def expression_summary(expression: dict[str, Any]) -> dict[str, Any]:
    """What an expression means, in sentences: ``entry`` (list), ``limit``, ``rules`` (name + lines), ``exit``."""
    primary = expression.get("PrimaryCriteria") or {}
    entry = [_criterion_words(expression, c) for c in primary.get("CriteriaList") or []]
    limit = ((primary.get("PrimaryCriteriaLimit") or {}).get("Type") or "First").lower()
    window = primary.get("ObservationWindow") or {}
    observation = ""
    if window.get("PriorDays") or window.get("PostDays"):
        observation = (
            f"with at least {window.get('PriorDays', 0)} days of observation before and "
            f"{window.get('PostDays', 0)} days after the event"
        )
    rules = []
    for rule in expression.get("InclusionRules") or []:
        group = rule.get("expression") or {}
        rules.append(
            {
                "name": rule.get("name") or "unnamed rule",
                "description": rule.get("description") or "",
                "combine": _group_type_words(group),
                "lines": _group_words(expression, group),
            }
        )
    end = expression.get("EndStrategy") or {}
    if "DateOffset" in end:
        offset = end["DateOffset"]
        exit_words = f"{offset.get('Offset', 0)} days after the event's {offset.get('DateField', 'StartDate')}"
    elif "CustomEra" in end:
        exit_words = "at the end of the continuous drug exposure era"
    else:
        exit_words = "at the end of the observation period of the entry event"
    return {
        "entry": entry,
        "limit": {"first": "the earliest event per person", "last": "the latest event per person"}.get(
            limit, "every event"
        ),
        "observation": observation,
        "rules": rules,
        "censoring": [_criterion_words(expression, c) for c in expression.get("CensoringCriteria") or []],
        "exit": exit_words,
    }


def rules_from_rows(rows: Iterable[dict[str, Any]]) -> tuple[RuleSpec, ...]:
    """Rule specs from the builder's rule rows (cleaned form data); rows without concepts are left out."""
    rules = []
    for row in rows:
        if not row or not row.get("concepts"):
            continue
        rules.append(
            RuleSpec(
                domain=row["domain"],
                concept_ids=parse_concept_ids(row["concepts"], field_name="rules"),
                at_least=int(row.get("at_least") or 1),
                days_before=int(row.get("days_before") if row.get("days_before") is not None else 365),
                name=row.get("name") or "",
            )
        )
    return tuple(rules)
