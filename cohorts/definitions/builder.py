"""The block builder of the browser (cohorts/definitions/builder_views.py, static/js/cohort_builder.js): the rules
that the page and the server share.

The page edits the expression JSON itself, so whatever it does not model stays in the document untouched. Here live
which domains the page offers and which of their attributes it shows (served to the page from the table of domains,
``builder_domains``; ``unmodelled_fragments`` lists the other parts, displayed read-only), which block a validation
error belongs to, and the description the page shows (``describe_expression``: the sentences come from the one
describer, ``cohorts.definitions.describe``, so that they are tested and translated once).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext as _

from cohorts.definitions.describe import block_sentences
from cohorts.expression import parse_draft
from cohorts.expression.domains import DOMAINS, Domain


def builder_domains() -> list[dict[str, Any]]:
    """Each domain as the page needs it: its menu label (translated), whether the menu offers it, and where its
    criteria keep what the page edits (``First``, the concept set, the value, the age, the start date range).
    Served in the page's configuration: the script holds no copy of the table of domains."""
    return [
        {
            "key": domain.name,
            "label": _(domain.words),
            "offered": domain.offered,
            "first": domain.has_first,
            "codeset": domain.has_codeset,
            "value": domain.has_value,
            "age": domain.age_attribute,
            "start_dates": domain.start_dates,
        }
        for domain in DOMAINS.values()
    ]


def describe_expression(expression: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of an expression being edited: the sentence under each block (``sentences``), the
    fragments the blocks do not show (``extras``), and whether it is valid, with its errors and their blocks.
    Computes only, without the database; the expression may be a draft of any shape. (The page's validation adds
    the warnings, ``cohorts.definitions.warnings``, which read the vocabulary: ``builder_views.validation``.)"""
    draft = parse_draft(expression)
    return {
        "sentences": block_sentences(draft),
        "extras": unmodelled_fragments(expression),
        "valid": not draft.errors,
        "errors": expression_errors(draft.errors),
    }


def expression_errors(errors: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Validation errors ``(path, message)`` as the page shows them: each in the block it concerns."""
    return [{"path": path, "message": message, "block": error_block(path)} for path, message in errors]


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
    """``value`` if it is a list, else empty: the page lists the fragments of drafts that may not validate yet."""
    return value if isinstance(value, list) else []


def _empty(value: Any) -> bool:
    """A value that changes nothing (false, null, empty): kept in the JSON but not worth showing."""
    return value is None or value is False or value == [] or value == {} or value == ""


def criterion_modelled_keys(domain: Domain) -> frozenset[str]:
    """The attributes of a criterion of ``domain`` the builder shows and edits (``builder_domains`` tells the page
    which: the same facts of the table of domains)."""
    keys = {"CodesetId", "Gender", domain.start_dates, domain.age_attribute}
    if domain.has_first:
        keys.add("First")
    if domain.has_value:
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
    for name, attributes in criterion.items():
        domain = DOMAINS.get(name)
        if domain is None or not domain.offered:
            out.append(_fragment(f"{path}.{name}", attributes))
            continue
        _extra_keys(attributes, criterion_modelled_keys(domain), f"{path}.{name}", out)


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


def empty_expression() -> dict[str, Any]:
    """Where a new definition starts: one empty concept set and one condition entry event using it."""
    return {
        "ConceptSets": [{"id": 0, "name": _("Entry concepts"), "expression": {"items": []}}],
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
