"""Cohort building helpers: a simple spec builder, the block builder's rules, and plain words for any expression.

``build_expression`` turns a simple spec (one entry concept set, age, gender, a few "at least k events in the D
days before" rules; used by scripts and tests since the browser got the block builder) into OHDSI ATLAS/Circe
JSON, the only format definitions are stored in: a definition made here exports to ATLAS and back unchanged.
``expression_summary`` goes the other way, for any expression (built here or imported), and says what it means
in sentences.

``describe_expression`` and ``unmodelled_fragments`` serve the block builder of the browser (sentences under each
block, and what the blocks do not show). Their sentences go through gettext; nothing else here needs Django.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as N_

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


# ---------------------------------------------------------------------------------------------------------------
# The block builder of the browser (cohorts/definitions/builder_views.py, static/js/cohort_builder.js).
#
# The page edits the expression JSON itself, so whatever it does not model stays in the document untouched. Here
# live the rules shared by the page and the server: which fields the page shows (``unmodelled_fragments`` lists
# the others, to be displayed read-only), which block a validation error belongs to, and the sentence under each
# block. Sentences are made here rather than in JS so that they are tested and translated once (gettext).
# ---------------------------------------------------------------------------------------------------------------

#: Every Circe criterion domain the builder offers, with words for people.
BUILDER_DOMAINS: dict[str, str] = {
    "ConditionOccurrence": "condition",
    "DrugExposure": "drug exposure",
    "Measurement": "measurement",
    "ProcedureOccurrence": "procedure",
    "Observation": "observation",
    "VisitOccurrence": "visit",
    "DeviceExposure": "device exposure",
    "Death": "death",
    "ConditionEra": "condition era",
    "DrugEra": "drug era",
    "DoseEra": "dose era",
    "ObservationPeriod": "observation period",
    "Specimen": "specimen",
    "VisitDetail": "visit detail",
    "PayerPlanPeriod": "payer plan period",
}

#: The start-date attribute of each domain (what "occurrence start date range" means there).
START_DATE_FIELDS: dict[str, str] = {
    "ConditionEra": "EraStartDate",
    "DrugEra": "EraStartDate",
    "DoseEra": "EraStartDate",
    "ObservationPeriod": "PeriodStartDate",
    "PayerPlanPeriod": "PeriodStartDate",
    "VisitDetail": "VisitDetailStartDate",
    "LocationRegion": "StartDate",
}
VALUE_DOMAINS = frozenset({"Measurement", "Observation"})
NO_FIRST_DOMAINS = frozenset({"Death", "LocationRegion"})
ERA_AGE_DOMAINS = frozenset({"ConditionEra", "DrugEra", "DoseEra", "ObservationPeriod", "PayerPlanPeriod"})

_TOP_KEYS = frozenset(
    {
        "ConceptSets",
        "PrimaryCriteria",
        "QualifiedLimit",
        "ExpressionLimit",
        "InclusionRules",
        "EndStrategy",
        "CensoringCriteria",
        "CollapseSettings",
        "CensorWindow",
    }
)
_ITEM_KEYS = frozenset({"concept", "isExcluded", "includeDescendants", "includeMapped"})
_PRIMARY_KEYS = frozenset({"CriteriaList", "ObservationWindow", "PrimaryCriteriaLimit"})
_GROUP_KEYS = frozenset({"Type", "Count", "CriteriaList", "DemographicCriteriaList", "Groups"})
_CORRELATED_KEYS = frozenset(
    {"Criteria", "StartWindow", "EndWindow", "Occurrence", "RestrictVisit", "IgnoreObservationPeriod"}
)
_WINDOW_KEYS = frozenset({"Start", "End"})
_OCCURRENCE_KEYS = frozenset({"Type", "Count"})
_DEMOGRAPHIC_KEYS = frozenset({"Age", "Gender"})
_ROOT_PATH = re.compile(r"^(ConceptSets|InclusionRules)\[(\d+)\]")


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else empty: descriptions are made of drafts that may not validate yet."""
    return value if isinstance(value, list) else []


def _empty(value: Any) -> bool:
    """A value that changes nothing (false, null, empty): kept in the JSON but not worth showing."""
    return value is None or value is False or value == [] or value == {} or value == ""


def criterion_modelled_keys(domain: str) -> frozenset[str]:
    """The attributes of a criterion of ``domain`` the builder shows and edits."""
    keys = {"CodesetId", "Gender", START_DATE_FIELDS.get(domain, "OccurrenceStartDate")}
    keys.add("AgeAtStart" if domain in ERA_AGE_DOMAINS else "Age")
    if domain not in NO_FIRST_DOMAINS:
        keys.add("First")
    if domain in VALUE_DOMAINS:
        keys.add("ValueAsNumber")
    return frozenset(keys)


def _fragment(path: str, value: Any) -> dict[str, str]:
    return {"path": path, "json": json.dumps(value, indent=1, ensure_ascii=False)}


def _extra_keys(node: Any, known: frozenset[str], path: str, out: list[dict[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in known and not _empty(value):
                out.append(_fragment(f"{path}.{key}" if path else key, value))


def _criterion_extras(criterion: Any, path: str, out: list[dict[str, str]]) -> None:
    if not isinstance(criterion, dict):
        return
    for domain, attributes in criterion.items():
        if domain not in BUILDER_DOMAINS:
            out.append(_fragment(f"{path}.{domain}", attributes))
            continue
        _extra_keys(attributes, criterion_modelled_keys(domain), f"{path}.{domain}", out)


def _group_extras(group: Any, path: str, out: list[dict[str, str]]) -> None:
    if not isinstance(group, dict):
        return
    _extra_keys(group, _GROUP_KEYS, path, out)
    for i, correlated in enumerate(_list(group.get("CriteriaList"))):
        here = f"{path}.CriteriaList[{i}]"
        _extra_keys(correlated, _CORRELATED_KEYS, here, out)
        if not isinstance(correlated, dict):
            continue
        _criterion_extras(correlated.get("Criteria"), f"{here}.Criteria", out)
        for window in ("StartWindow", "EndWindow"):
            _extra_keys(correlated.get(window), _WINDOW_KEYS, f"{here}.{window}", out)
        _extra_keys(correlated.get("Occurrence"), _OCCURRENCE_KEYS, f"{here}.Occurrence", out)
    for i, demographic in enumerate(_list(group.get("DemographicCriteriaList"))):
        _extra_keys(demographic, _DEMOGRAPHIC_KEYS, f"{path}.DemographicCriteriaList[{i}]", out)
    for i, nested in enumerate(_list(group.get("Groups"))):
        _group_extras(nested, f"{path}.Groups[{i}]", out)


def unmodelled_fragments(expression: dict[str, Any]) -> list[dict[str, str]]:
    """The parts of ``expression`` the builder does not show, as ``{"path", "json"}`` in document order.

    They stay in the document untouched (the page edits the JSON in place); the page lists them read-only under
    "Also in this definition" so nobody is surprised by what a count includes. Empty values are left out.
    """
    out: list[dict[str, str]] = []
    _extra_keys(expression, _TOP_KEYS, "", out)
    for i, concept_set in enumerate(_list(expression.get("ConceptSets"))):
        if not isinstance(concept_set, dict):
            continue
        _extra_keys(concept_set, frozenset({"id", "name", "expression"}), f"ConceptSets[{i}]", out)
        inner = concept_set.get("expression")
        _extra_keys(inner, frozenset({"items"}), f"ConceptSets[{i}].expression", out)
        for j, item in enumerate(_list(inner.get("items")) if isinstance(inner, dict) else []):
            _extra_keys(item, _ITEM_KEYS, f"ConceptSets[{i}].expression.items[{j}]", out)
    primary = expression.get("PrimaryCriteria")
    _extra_keys(primary, _PRIMARY_KEYS, "PrimaryCriteria", out)
    if isinstance(primary, dict):
        for i, criterion in enumerate(_list(primary.get("CriteriaList"))):
            _criterion_extras(criterion, f"PrimaryCriteria.CriteriaList[{i}]", out)
        _extra_keys(
            primary.get("ObservationWindow"),
            frozenset({"PriorDays", "PostDays"}),
            "PrimaryCriteria.ObservationWindow",
            out,
        )
    for key in ("QualifiedLimit", "ExpressionLimit"):
        _extra_keys(expression.get(key), frozenset({"Type"}), key, out)
    for i, rule in enumerate(_list(expression.get("InclusionRules"))):
        _extra_keys(rule, frozenset({"name", "description", "expression"}), f"InclusionRules[{i}]", out)
        if isinstance(rule, dict):
            _group_extras(rule.get("expression"), f"InclusionRules[{i}].expression", out)
    end = expression.get("EndStrategy")
    _extra_keys(end, frozenset({"DateOffset", "CustomEra"}), "EndStrategy", out)
    if isinstance(end, dict):
        _extra_keys(end.get("DateOffset"), frozenset({"DateField", "Offset"}), "EndStrategy.DateOffset", out)
        _extra_keys(
            end.get("CustomEra"), frozenset({"DrugCodesetId", "GapDays", "Offset"}), "EndStrategy.CustomEra", out
        )
    for i, criterion in enumerate(_list(expression.get("CensoringCriteria"))):
        _criterion_extras(criterion, f"CensoringCriteria[{i}]", out)
    _extra_keys(expression.get("CollapseSettings"), frozenset({"CollapseType", "EraPad"}), "CollapseSettings", out)
    _extra_keys(expression.get("CensorWindow"), frozenset({"StartDate", "EndDate"}), "CensorWindow", out)
    return out


def error_block(path: str) -> str:
    """The builder block a validation error's JSON path belongs to (``entry``, ``rule-2``, ``exit``, …)."""
    match = _ROOT_PATH.match(path)
    if match:
        return ("concept-set-" if match.group(1) == "ConceptSets" else "rule-") + match.group(2)
    if path.startswith("ConceptSets"):
        return "concept-sets"
    if path.startswith(("PrimaryCriteria", "QualifiedLimit", "ExpressionLimit")):
        return "entry"
    if path.startswith("InclusionRules"):
        return "rules"
    if path.startswith(("EndStrategy", "CensoringCriteria", "CollapseSettings", "CensorWindow")):
        return "exit"
    return "general"


# --- sentences -------------------------------------------------------------------------------------------------

_OPS = {
    "lt": N_("below {v}"),
    "lte": N_("{v} or less"),
    "eq": N_("equal to {v}"),
    "!eq": N_("not equal to {v}"),
    "gt": N_("above {v}"),
    "gte": N_("{v} or more"),
    "bt": N_("between {v} and {e}"),
    "!bt": N_("not between {v} and {e}"),
}
_DATE_OPS = {
    "lt": N_("before {v}"),
    "lte": N_("on or before {v}"),
    "eq": N_("on {v}"),
    "!eq": N_("not on {v}"),
    "gt": N_("after {v}"),
    "gte": N_("on or after {v}"),
    "bt": N_("between {v} and {e}"),
    "!bt": N_("not between {v} and {e}"),
}
_GENDER_WORDS = {8507: "male", 8532: "female"}


def _range_words(value: Any, table: dict[str, str]) -> str:
    if not isinstance(value, dict):
        return ""
    op = str(value.get("Op") or "")
    pattern = table.get(op) or table.get(op.lower())
    if not pattern or value.get("Value") is None:
        return ""
    return _(pattern).format(v=value.get("Value"), e=value.get("Extent"))


def _set_name(expression: dict[str, Any], codeset_id: Any) -> str:
    for concept_set in _list(expression.get("ConceptSets")):
        if isinstance(concept_set, dict) and concept_set.get("id") == codeset_id:
            return f"“{concept_set.get('name') or _('concept set {id}').format(id=codeset_id)}”"
    return ""


def _gender_words(genders: Any) -> str:
    names = []
    for gender in _list(genders):
        if isinstance(gender, dict):
            concept_id = gender.get("CONCEPT_ID")
            names.append(_(_GENDER_WORDS[concept_id]) if concept_id in _GENDER_WORDS else str(concept_id))
    return _(" or ").join(names)


def criterion_sentence(expression: dict[str, Any], criterion: Any) -> str:
    """Criterion in words: "a measurement of “HbA1c” with a value above 7, in a person aged 18 or more" and so on."""
    if not isinstance(criterion, dict) or not criterion:
        return _("an event")
    domain, attributes = next(iter(criterion.items()))
    attributes = attributes if isinstance(attributes, dict) else {}
    words = _(BUILDER_DOMAINS.get(domain, _CIRCE_WORDS.get(domain, domain)))
    concept_set = _set_name(expression, attributes.get("CodesetId"))
    if not concept_set:
        text = _("any {what}").format(what=words)
    elif words[:1] in "aeiou":
        text = _("an {what} of {set}").format(what=words, set=concept_set)
    else:
        text = _("a {what} of {set}").format(what=words, set=concept_set)
    if attributes.get("First"):
        text += _(", the first in the person's history")
    value = _range_words(attributes.get("ValueAsNumber"), _OPS)
    if value:
        text += _(", with a value {range}").format(range=value)
    dates = _range_words(attributes.get(START_DATE_FIELDS.get(domain, "OccurrenceStartDate")), _DATE_OPS)
    if dates:
        text += _(", starting {range}").format(range=dates)
    age = _range_words(attributes.get("AgeAtStart" if domain in ERA_AGE_DOMAINS else "Age"), _OPS)
    if age:
        text += _(", at an age of {range}").format(range=age)
    genders = _gender_words(attributes.get("Gender"))
    if genders:
        text += _(", in a {gender} person").format(gender=genders)
    return text


def _endpoint_sentence(endpoint: dict[str, Any]) -> str:
    days, coeff = endpoint.get("Days"), endpoint.get("Coeff")
    if days == 0:
        return _("the index date")
    before = not isinstance(coeff, (int, float)) or coeff < 0
    return (_("{days} days before the index date") if before else _("{days} days after the index date")).format(
        days=days
    )


def _window_sentence(window: Any, which: str) -> str:
    """A window in words: "starting between 365 days before the index date and the index date"; an open end
    reads "on or after" / "on or before"."""
    window = window if isinstance(window, dict) else {}
    start = window.get("Start") if isinstance(window.get("Start"), dict) else {}
    end = window.get("End") if isinstance(window.get("End"), dict) else {}
    if start.get("Days") is None and end.get("Days") is None:
        return _("{which} at any time").format(which=which)
    if start.get("Days") is None:
        return _("{which} on or before {end}").format(which=which, end=_endpoint_sentence(end))
    if end.get("Days") is None:
        return _("{which} on or after {start}").format(which=which, start=_endpoint_sentence(start))
    return _("{which} between {start} and {end}").format(
        which=which, start=_endpoint_sentence(start), end=_endpoint_sentence(end)
    )


def correlated_sentence(expression: dict[str, Any], correlated: dict[str, Any]) -> str:
    """ "at least 2 × a measurement of “HbA1c” with a value above 7, starting between 365 days before and on the
    index date"."""
    occurrence = correlated.get("Occurrence") if isinstance(correlated.get("Occurrence"), dict) else {}
    kind = {"0": _("exactly"), "1": _("at most")}.get(str(occurrence.get("Type", 2)), _("at least"))
    text = f"{kind} {occurrence.get('Count', 1)} × {criterion_sentence(expression, correlated.get('Criteria'))}"
    text += ", " + _window_sentence(correlated.get("StartWindow"), _("starting"))
    if correlated.get("EndWindow"):
        text += ", " + _window_sentence(correlated.get("EndWindow"), _("ending"))
    if correlated.get("RestrictVisit"):
        text += _(", in the same visit")
    if correlated.get("IgnoreObservationPeriod"):
        text += _(", even outside the observation period")
    return text


def _demographic_sentence(demographic: dict[str, Any]) -> str:
    parts = []
    age = _range_words(demographic.get("Age"), _OPS)
    if age:
        parts.append(_("aged {range}").format(range=age))
    genders = _gender_words(demographic.get("Gender"))
    if genders:
        parts.append(genders)
    return _("the person is {what} at the index date").format(what=", ".join(parts) or _("of any age and gender"))


def group_sentence(expression: dict[str, Any], group: Any) -> str:
    """A criteria group in words: "all of: …; …" (nested groups in brackets)."""
    group = group if isinstance(group, dict) else {}
    parts = [correlated_sentence(expression, c) for c in _list(group.get("CriteriaList")) if isinstance(c, dict)]
    parts += [_demographic_sentence(d) for d in _list(group.get("DemographicCriteriaList")) if isinstance(d, dict)]
    parts += [f"({group_sentence(expression, g)})" for g in _list(group.get("Groups"))]
    if not parts:
        return _("no criteria yet: every person passes")
    kind = str(group.get("Type") or "ALL").upper()
    lead = {
        "ALL": _("all of"),
        "ANY": _("any of"),
        "AT_LEAST": _("at least {n} of").format(n=group.get("Count")),
        "AT_MOST": _("at most {n} of").format(n=group.get("Count")),
    }.get(kind, kind.lower())
    return f"{lead}: " + "; ".join(parts)


def concept_set_sentence(concept_set: dict[str, Any]) -> str:
    inner = concept_set.get("expression")
    items = _list(inner.get("items")) if isinstance(inner, dict) else []
    included = [i for i in items if isinstance(i, dict) and not i.get("isExcluded")]
    excluded = len(items) - len(included)
    if not items:
        return _("No concepts yet: criteria using this set match nothing.")
    text = _("{n} concept(s)").format(n=len(included))
    descendants = sum(1 for i in included if i.get("includeDescendants"))
    if descendants:
        text += _(", {n} with all their descendants").format(n=descendants)
    mapped = sum(1 for i in included if i.get("includeMapped"))
    if mapped:
        text += _(", {n} with the source codes mapped to them").format(n=mapped)
    if excluded:
        text += _(", minus {n} excluded concept(s)").format(n=excluded)
    return text + "."


def _limit_words(limit: Any) -> str:
    kind = str((limit or {}).get("Type") if isinstance(limit, dict) else "First").lower()
    return {"first": _("the earliest"), "last": _("the latest")}.get(kind, _("each"))


def entry_sentence(expression: dict[str, Any]) -> str:
    primary = expression.get("PrimaryCriteria") if isinstance(expression.get("PrimaryCriteria"), dict) else {}
    criteria = [criterion_sentence(expression, c) for c in _list(primary.get("CriteriaList"))]
    if not criteria:
        return _("No entry event yet: add one.")
    text = _("A person enters the cohort at {limit} of these events: {events}.").format(
        limit=_limit_words(primary.get("PrimaryCriteriaLimit")), events=_("; or ").join(criteria)
    )
    window = primary.get("ObservationWindow") if isinstance(primary.get("ObservationWindow"), dict) else {}
    if window.get("PriorDays") or window.get("PostDays"):
        text += " " + _(
            "The event needs at least {prior} days of observation before it and {post} days after it."
        ).format(prior=window.get("PriorDays") or 0, post=window.get("PostDays") or 0)
    if expression.get("InclusionRules"):
        qualified = expression.get("QualifiedLimit") if isinstance(expression.get("QualifiedLimit"), dict) else {}
        text += " " + {
            "first": _("Of the events that pass the rules, the earliest per person is kept."),
            "last": _("Of the events that pass the rules, the latest per person is kept."),
        }.get(str(qualified.get("Type") or "first").lower(), _("Every event that passes the rules is kept."))
    return text


def rule_sentence(expression: dict[str, Any], rule: Any) -> str:
    rule = rule if isinstance(rule, dict) else {}
    return _("Keeps the entry events where {group}.").format(group=group_sentence(expression, rule.get("expression")))


def exit_sentence(expression: dict[str, Any]) -> str:
    end = expression.get("EndStrategy") if isinstance(expression.get("EndStrategy"), dict) else {}
    if isinstance(end.get("DateOffset"), dict):
        offset = end["DateOffset"]
        field_words = _("end") if offset.get("DateField") == "EndDate" else _("start")
        text = _("The person leaves the cohort {days} days after the entry event's {field} date").format(
            days=offset.get("Offset", 0), field=field_words
        )
        text += _(" (or at the end of observation, if earlier).")
    elif isinstance(end.get("CustomEra"), dict):
        era = end["CustomEra"]
        drug = _set_name(expression, era.get("DrugCodesetId")) or _("the chosen drugs")
        text = _(
            "The person leaves the cohort at the end of continuous exposure to {drug} (gaps of up to {gap} days "
            "bridged), plus {offset} days."
        ).format(drug=drug, gap=era.get("GapDays", 0), offset=era.get("Offset", 0))
    else:
        text = _("The person leaves the cohort at the end of the observation period of the entry event.")
    censoring = [criterion_sentence(expression, c) for c in _list(expression.get("CensoringCriteria"))]
    if censoring:
        text += " " + _("They leave earlier at {events}.").format(events=_("; or ").join(censoring))
    collapse = expression.get("CollapseSettings") if isinstance(expression.get("CollapseSettings"), dict) else {}
    if collapse.get("EraPad"):
        text += " " + _("Cohort periods less than {n} days apart are joined.").format(n=collapse["EraPad"])
    window = expression.get("CensorWindow") if isinstance(expression.get("CensorWindow"), dict) else {}
    if window.get("StartDate") or window.get("EndDate"):
        text += " " + _("Cohort periods are cut to {start} – {end}.").format(
            start=window.get("StartDate") or "…", end=window.get("EndDate") or "…"
        )
    return text


def describe_expression(expression: dict[str, Any]) -> dict[str, Any]:
    """The sentence under each builder block, keyed by block (``entry``, ``concept-set-0``, ``rule-1``, ``exit``),
    and the fragments the builder does not model. Lenient: it describes drafts that do not validate yet."""
    sentences: dict[str, str] = {"entry": entry_sentence(expression), "exit": exit_sentence(expression)}
    for i, concept_set in enumerate(_list(expression.get("ConceptSets"))):
        if isinstance(concept_set, dict):
            sentences[f"concept-set-{i}"] = concept_set_sentence(concept_set)
    for i, rule in enumerate(_list(expression.get("InclusionRules"))):
        sentences[f"rule-{i}"] = rule_sentence(expression, rule)
    return {"sentences": sentences, "extras": unmodelled_fragments(expression)}


def empty_expression() -> dict[str, Any]:
    """Where a new definition starts: one empty concept set and one condition entry event using it."""
    return {
        "ConceptSets": [{"id": 0, "name": "Entry concepts", "expression": {"items": []}}],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "QualifiedLimit": {"Type": "First"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": [],
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "CensorWindow": {},
    }
