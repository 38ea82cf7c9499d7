"""Warnings of the builder: what is valid but almost surely a mistake, said in plain words with how to fix it.

Errors (``cohorts.expression``) make a definition unsavable; warnings do not: a definition with a warning is saved
and counted as it is, but the builder shows each warning beside its block and in the validation summary, and again
when the user saves or counts (``builder_views``). They are computed here only, from the typed nodes of the draft:

- a criterion whose domain does not match the vocabulary domains of its concept set's concepts (a condition
  criterion with a set of drugs counts nobody); the domains come from the portal's copy of the vocabulary, and a
  concept the vocabulary does not hold is not a mismatch (nothing is known of it);
- an empty concept set used by a criterion (it matches nothing);
- an impossible time window (it starts after it ends: "from 30 days after to 10 days before the index date");
- demographic rules that cannot all hold (age 65 or more and below 18, or male and female, where all must hold:
  the members of one ALL group, and the inclusion rules, which must all hold together).

Each warning is ``{"block", "path", "code", "message"}``: the builder block it is shown beside (as for errors,
``builder.error_block``), the JSON path of what it concerns, a stable code for tests and scripts, and the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from cohorts.definitions.describe import GENDER_WORDS, age_range_words
from cohorts.expression import (
    CohortExpression,
    ConceptSet,
    CriteriaGroup,
    Criterion,
    CustomEraStrategy,
    DemographicCriteria,
    Draft,
    NumericRange,
    Window,
    parse_draft,
)
from cohorts.expression.domains import DOMAINS
from warehouse.models import Concept

#: How many mismatching concepts a warning names before it says "and N more".
NAMED_CONCEPTS = 3

#: concept ids → (domain_id, concept_name) of those the vocabulary holds.
ConceptLookup = Callable[[Iterable[int]], dict[int, tuple[str, str]]]


def vocabulary_concepts(concept_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The domain and name of each concept the portal's vocabulary holds (one query); others are left out."""
    ids = sorted(set(concept_ids))
    if not ids:
        return {}
    rows = Concept.objects.filter(concept_id__in=ids).values_list("concept_id", "domain_id", "concept_name")
    return {concept_id: (domain_id, name) for concept_id, domain_id, name in rows}


@dataclass(frozen=True)
class _Place:
    """Where a criterion is: its builder block, its JSON path, and how a message names it."""

    block: str
    path: str


def _warning(place: _Place, code: str, message: str) -> dict[str, str]:
    return {"block": place.block, "path": place.path, "code": code, "message": message}


def _criteria(expression: CohortExpression, draft: Draft) -> Iterator[tuple[_Place, Criterion]]:
    """Every criterion of the draft that names a concept set, with its place (nested ones included)."""
    for i, criterion in enumerate(expression.primary_criteria.criteria_list):
        yield from _criterion_tree(_Place("entry", f"PrimaryCriteria.CriteriaList[{i}]"), criterion)
    for i, rule in enumerate(draft.inclusion_rules):
        if rule is not None:
            yield from _group_criteria(_Place(f"rule-{i}", f"InclusionRules[{i}].expression"), rule.expression)
    for i, criterion in enumerate(expression.censoring_criteria):
        yield from _criterion_tree(_Place("exit", f"CensoringCriteria[{i}]"), criterion)


def _criterion_tree(place: _Place, criterion: Criterion) -> Iterator[tuple[_Place, Criterion]]:
    yield _Place(place.block, f"{place.path}.{criterion.domain}"), criterion
    if criterion.correlated is not None:
        yield from _group_criteria(
            _Place(place.block, f"{place.path}.{criterion.domain}.CorrelatedCriteria"), criterion.correlated
        )


def _group_criteria(place: _Place, group: CriteriaGroup) -> Iterator[tuple[_Place, Criterion]]:
    for i, correlated in enumerate(group.criteria_list):
        yield from _criterion_tree(_Place(place.block, f"{place.path}.CriteriaList[{i}].Criteria"), correlated.criteria)
    for i, nested in enumerate(group.groups):
        yield from _group_criteria(_Place(place.block, f"{place.path}.Groups[{i}]"), nested)


def _set_name(concept_set: ConceptSet) -> str:
    return concept_set.name or _("concept set {id}").format(id=concept_set.id)


def _domain_words(name: str) -> str:
    domain = DOMAINS.get(name)
    return _(domain.words) if domain is not None else name


def _suggested_domain(vocabulary_domain: str) -> str | None:
    """The builder's domain for concepts of a vocabulary domain ("Drug" → drug exposure), if it offers one."""
    for domain in DOMAINS.values():
        if domain.offered and vocabulary_domain in domain.concept_domains:
            return domain.name
    return None


def _concept_list(concepts: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"{name} ({concept_id})" for concept_id, name in concepts[:NAMED_CONCEPTS])
    if len(concepts) > NAMED_CONCEPTS:
        shown += _(" and {n} more").format(n=len(concepts) - NAMED_CONCEPTS)
    return shown


def _empty_set_warning(place: _Place, criterion_words: str, concept_set: ConceptSet) -> dict[str, str]:
    """A set with nothing to include: no concept yet, or only excluded ones (an exclusion takes away from what is
    included; alone it includes nothing)."""
    if concept_set.items:
        text = _(
            "The {what} criterion uses the concept set “{set}”, whose concepts are all marked “exclude”: it matches "
            "nobody. Untick “exclude” on the concepts to look for."
        )
    else:
        text = _(
            "The {what} criterion uses the concept set “{set}”, which has no concepts yet: it matches nobody. "
            "Add concepts to the set, or choose another set."
        )
    return _warning(place, "empty-concept-set", text.format(what=criterion_words, set=_set_name(concept_set)))


def _mismatch_warning(
    place: _Place, domain_name: str, concept_set: ConceptSet, wrong: list[tuple[int, str, str]], total: int
) -> dict[str, str]:
    """``wrong``: (concept id, name, vocabulary domain) of the set's concepts that the criterion cannot find."""
    domains = sorted({d for _id, _name, d in wrong})
    suggestions = [s for s in (_suggested_domain(d) for d in domains) if s is not None]
    if len(wrong) == total:
        lead = _(
            "The {what} criterion uses the concept set “{set}”, whose concepts are {domains} concepts ({concepts}): "
            "{what} records never hold them, so this criterion counts nobody."
        )
    else:
        lead = _(
            "The {what} criterion uses the concept set “{set}”, but {n} of its concepts are {domains} concepts "
            "({concepts}): {what} records never hold those."
        )
    text = lead.format(
        what=_domain_words(domain_name),
        set=_set_name(concept_set),
        domains=_(" or ").join(domains),
        n=len(wrong),
        concepts=_concept_list([(concept_id, name) for concept_id, name, _d in wrong]),
    )
    if len(suggestions) == 1:
        text += " " + _("Choose the domain “{domain}” for this criterion, or a concept set of {what} concepts.").format(
            domain=_domain_words(suggestions[0]), what=_domain_words(domain_name)
        )
    else:
        text += " " + _("Choose the matching domain for this criterion, or a concept set of {what} concepts.").format(
            what=_domain_words(domain_name)
        )
    return _warning(place, "domain-mismatch", text)


def _concept_set_warnings(expression: CohortExpression, draft: Draft, lookup: ConceptLookup) -> list[dict[str, str]]:
    """Empty concept sets in use, and criteria whose domain does not match their concepts' domains."""
    uses: list[tuple[_Place, str, ConceptSet, tuple[str, ...]]] = []
    for place, criterion in _criteria(expression, draft):
        codeset_id = criterion.get("CodesetId")
        concept_set = expression.concept_set(codeset_id) if isinstance(codeset_id, int) else None
        domain = DOMAINS.get(criterion.domain)
        if concept_set is not None and domain is not None:
            uses.append((place, criterion.domain, concept_set, domain.concept_domains))
    strategy = expression.end_strategy
    if isinstance(strategy, CustomEraStrategy):
        drug_set = expression.concept_set(strategy.drug_codeset_id)
        if drug_set is not None:
            uses.append((_Place("exit", "EndStrategy.CustomEra"), "DrugExposure", drug_set, ("Drug",)))
    concepts = lookup(
        item.concept_id for _p, _d, concept_set, _c in uses for item in concept_set.items if not item.is_excluded
    )
    warnings = []
    for place, domain_name, concept_set, accepted in uses:
        included = [item.concept_id for item in concept_set.items if not item.is_excluded]
        if not included:
            warnings.append(_empty_set_warning(place, _domain_words(domain_name), concept_set))
            continue
        if not accepted:
            continue
        wrong = [
            (concept_id, concepts[concept_id][1], concepts[concept_id][0])
            for concept_id in dict.fromkeys(included)
            if concept_id in concepts and concepts[concept_id][0] not in accepted
        ]
        if wrong:
            warnings.append(_mismatch_warning(place, domain_name, concept_set, wrong, len(set(included))))
    return warnings


# --- windows ----------------------------------------------------------------------------------------------------


def _endpoint_text(days: int, coeff: int) -> str:
    if days == 0:
        return _("the index date")
    text = _("{days} days before the index date") if coeff < 0 else _("{days} days after the index date")
    return text.format(days=days)


def _window_warning(place: _Place, window: Window | None, which: str) -> dict[str, str] | None:
    """A window whose both ends are set and whose start lies after its end matches no event. An open end
    ("any time before/after") never makes a window impossible."""
    if window is None or window.start.days is None or window.end.days is None:
        return None
    start = window.start.days * (-1 if window.start.coeff < 0 else 1)
    end = window.end.days * (-1 if window.end.coeff < 0 else 1)
    if start <= end:
        return None
    message = _(
        "The window “{which}” starts at {start} but ends at {end}, which is earlier: no event can fall in it. "
        "Swap the two ends, or change “days before” / “days after”."
    ).format(
        which=which,
        start=_endpoint_text(window.start.days, window.start.coeff),
        end=_endpoint_text(window.end.days, window.end.coeff),
    )
    return _warning(place, "impossible-window", message)


def _group_windows(place: _Place, group: CriteriaGroup) -> Iterator[dict[str, str]]:
    for i, correlated in enumerate(group.criteria_list):
        here = _Place(place.block, f"{place.path}.CriteriaList[{i}]")
        for key, window, which in (
            ("StartWindow", correlated.start_window, _("starting")),
            ("EndWindow", correlated.end_window, _("ending")),
        ):
            warning = _window_warning(_Place(here.block, f"{here.path}.{key}"), window, which)
            if warning is not None:
                yield warning
        nested = correlated.criteria.correlated
        if nested is not None:
            yield from _group_windows(
                _Place(here.block, f"{here.path}.Criteria.{correlated.criteria.domain}.CorrelatedCriteria"), nested
            )
    for i, nested_group in enumerate(group.groups):
        yield from _group_windows(_Place(place.block, f"{place.path}.Groups[{i}]"), nested_group)


def _window_warnings(expression: CohortExpression, draft: Draft) -> list[dict[str, str]]:
    warnings: list[dict[str, str]] = []
    for i, rule in enumerate(draft.inclusion_rules):
        if rule is not None:
            warnings += _group_windows(_Place(f"rule-{i}", f"InclusionRules[{i}].expression"), rule.expression)
    for i, criterion in enumerate(expression.primary_criteria.criteria_list):
        if criterion.correlated is not None:
            place = _Place("entry", f"PrimaryCriteria.CriteriaList[{i}].{criterion.domain}.CorrelatedCriteria")
            warnings += _group_windows(place, criterion.correlated)
    return warnings


# --- demographics -----------------------------------------------------------------------------------------------


def _age_bounds(age: NumericRange) -> tuple[float, float] | None:
    """The whole ages a range allows, as [low, high] (infinite ends allowed); None when it excludes a value or a
    span ("not equal", "not between"), which never makes rules contradict here."""
    value = float(age.value)
    if age.op == "gt":
        return math.floor(value) + 1, math.inf
    if age.op == "gte":
        return math.ceil(value), math.inf
    if age.op == "lt":
        return -math.inf, math.ceil(value) - 1
    if age.op == "lte":
        return -math.inf, math.floor(value)
    if age.op == "eq":
        return (value, value) if value == int(value) else (1.0, 0.0)
    if age.op == "bt" and age.extent is not None:
        return math.ceil(value), math.floor(float(age.extent))
    return None


@dataclass(frozen=True)
class _Demographic:
    """One demographic criterion that must hold, and where: ``where`` names it in a message ("rule 2")."""

    place: _Place
    where: str
    criteria: DemographicCriteria


def _required_demographics(place: _Place, where: str, group: CriteriaGroup) -> list[_Demographic]:
    """The demographic criteria of ``group`` that must all hold: those of an ALL group and of the ALL groups nested
    in it (any other kind of group lets a person pass without some of its members)."""
    if group.type != "ALL":
        return []
    found = [
        _Demographic(_Place(place.block, f"{place.path}.DemographicCriteriaList[{i}]"), where, d)
        for i, d in enumerate(group.demographic_criteria_list)
    ]
    for i, nested in enumerate(group.groups):
        found += _required_demographics(_Place(place.block, f"{place.path}.Groups[{i}]"), where, nested)
    return found


def _gender_text(genders: Iterable[int]) -> str:
    return _(" or ").join(_(GENDER_WORDS[g]) if g in GENDER_WORDS else str(g) for g in genders)


def _contradiction_place(members: list[_Demographic]) -> _Place:
    """Where a contradiction is shown: in its block when all its members are in one (a rule, or the entry event),
    else under the inclusion rules."""
    blocks = {m.place.block for m in members}
    if len(blocks) == 1:
        return members[0].place
    return _Place("rules", "InclusionRules")


def _entry_demographics(expression: CohortExpression) -> list[_Demographic]:
    """The age and gender of a definition's only entry event: they hold at the index date (the event's date), like
    the rules'. With several entry events a person may enter by another, so nothing is required then."""
    entries = expression.primary_criteria.criteria_list
    if len(entries) != 1:
        return []
    criterion = entries[0]
    domain = DOMAINS.get(criterion.domain)
    age = criterion.get(domain.age_attribute if domain is not None else "Age")
    gender = criterion.get("Gender")
    if not isinstance(age, NumericRange):
        age = None
    if age is None and not gender:
        return []
    place = _Place("entry", f"PrimaryCriteria.CriteriaList[0].{criterion.domain}")
    return [_Demographic(place, _("the entry event"), DemographicCriteria(age=age, gender=tuple(gender or ())))]


def _demographic_warnings(draft: Draft) -> list[dict[str, str]]:
    """Age ranges with no age in common, and gender lists with no gender in common, among the demographic criteria
    that must all hold. Inclusion rules must all hold too, so a contradiction across two rules is found as well, and
    so is one between the only entry event's age or gender and a rule's."""
    required: list[_Demographic] = _entry_demographics(draft.expression)
    for i, rule in enumerate(draft.inclusion_rules):
        if rule is not None:
            where = _("rule {n}").format(n=i + 1)
            required += _required_demographics(
                _Place(f"rule-{i}", f"InclusionRules[{i}].expression"), where, rule.expression
            )
    warnings = []
    ages = [(m, _age_bounds(m.criteria.age)) for m in required if m.criteria.age is not None]
    bounded = [(m, b) for m, b in ages if b is not None]
    if bounded:
        low = max(b[0] for _m, b in bounded)
        high = min(b[1] for _m, b in bounded)
        if low > high:
            members = [m for m, _b in bounded]
            parts = "; ".join(
                f"{m.where}: {age_range_words(m.criteria.age)}" for m in members if m.criteria.age is not None
            )
            warnings.append(
                _warning(
                    _contradiction_place(members),
                    "contradictory-age",
                    _(
                        "These age rules cannot all hold ({rules}): nobody has such an age at the index date. "
                        "Change or remove one of them."
                    ).format(rules=parts),
                )
            )
    genders = [m for m in required if m.criteria.gender]
    if genders:
        common = set(genders[0].criteria.gender)
        for member in genders[1:]:
            common &= set(member.criteria.gender)
        if not common:
            parts = "; ".join(f"{m.where}: {_gender_text(m.criteria.gender)}" for m in genders)
            warnings.append(
                _warning(
                    _contradiction_place(genders),
                    "contradictory-gender",
                    _(
                        "These gender rules exclude each other ({rules}): nobody meets them all. Keep one gender, "
                        "or tick both genders in one rule to allow either."
                    ).format(rules=parts),
                )
            )
    return warnings


# --- all of them ------------------------------------------------------------------------------------------------


def expression_warnings(
    expression: dict[str, Any] | Draft, *, lookup: ConceptLookup = vocabulary_concepts
) -> list[dict[str, str]]:
    """The warnings of an expression (a draft of any shape: the parts that are not valid are left to the errors),
    in the order of the blocks: entry, rules, exit."""
    draft = expression if isinstance(expression, Draft) else parse_draft(expression)
    typed = draft.expression
    warnings = _concept_set_warnings(typed, draft, lookup) + _window_warnings(typed, draft)
    warnings += _demographic_warnings(draft)
    order = {"entry": 0, "rules": 2, "exit": 3}
    return sorted(
        warnings,
        key=lambda w: (order.get(w["block"], 1), int(w["block"][5:]) if w["block"].startswith("rule-") else 0),
    )
