"""The one describer: what a cohort expression means, in translated sentences, read from its typed nodes.

Everything that says an expression in words comes here: the definition page and its printable summary
(``expression_summary``), the comparison of two versions (``cohorts.definitions.versions``) and the sentence under
each block of the builder (``block_sentences``). It reads the nodes of ``cohorts.expression``; JSON is parsed as a
draft first, so an expression being edited, or one saved before a rule of the parser existed, is described as far
as it is valid (what is not valid is left out: the parser's errors say what it is). Domain facts (words, where the
start date, the age and the value are) come from the table of domains. Every sentence goes through gettext.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as N_

from cohorts.expression import (
    CohortExpression,
    ConceptSet,
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    CustomEraStrategy,
    DateOffsetStrategy,
    DateRange,
    DemographicCriteria,
    Draft,
    Endpoint,
    InclusionRule,
    NumericRange,
    Occurrence,
    Window,
    parse_draft,
)
from cohorts.expression.domains import DOMAINS

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
#: The gender concepts of OMOP, in words; another concept is said by its id.
GENDER_WORDS = {8507: N_("male"), 8532: N_("female")}
#: How many concepts of a set the summary names before it says "and N more".
NAMED_CONCEPTS = 8


def _as_draft(expression: CohortExpression | dict[str, Any]) -> Draft:
    if isinstance(expression, CohortExpression):
        return Draft(expression, (), expression.concept_sets, expression.inclusion_rules)
    return parse_draft(expression)


# --- criteria ---------------------------------------------------------------------------------------------------


def _range_words(rng: NumericRange | DateRange | None, table: dict[str, str]) -> str:
    if rng is None:
        return ""
    return _(table[rng.op]).format(v=rng.value, e=rng.extent)


def age_range_words(rng: NumericRange | None) -> str:
    """An age range in words ("65 or more", "between 18 and 65"), as the sentences say it."""
    return _range_words(rng, _OPS)


def _concept_words(concept_set: ConceptSet) -> str:
    """The concepts of a set as the summary lists them: "201826+, 320128" ("+": with descendants)."""
    ids = [
        f"{item.concept_id}{'+' if item.include_descendants else ''}"
        for item in concept_set.items
        if not item.is_excluded
    ]
    if not ids:
        return _("no concept")
    shown = ", ".join(ids[:NAMED_CONCEPTS])
    if len(ids) > NAMED_CONCEPTS:
        shown += _(" and {n} more").format(n=len(ids) - NAMED_CONCEPTS)
    return shown


def _set_name(expression: CohortExpression, codeset_id: int | None, *, concepts: bool = False) -> str:
    """“name” of a concept set (with its concepts listed when ``concepts``), or "" when there is no such set."""
    concept_set = expression.concept_set(codeset_id) if codeset_id is not None else None
    if concept_set is None:
        return ""
    name = f"“{concept_set.name or _('concept set {id}').format(id=codeset_id)}”"
    return f"{name} ({_concept_words(concept_set)})" if concepts else name


def _gender_words(genders: tuple[int, ...] | None) -> str:
    return _(" or ").join(_(GENDER_WORDS[g]) if g in GENDER_WORDS else str(g) for g in genders or ())


def criterion_words(expression: CohortExpression, criterion: Criterion, *, concepts: bool = False) -> str:
    """A criterion in words: "a measurement of “HbA1c”, with a value above 7, at an age of 18 or more" and so on.

    ``concepts``: name the concepts of its set too, for pages that do not list the sets elsewhere."""
    domain = DOMAINS.get(criterion.domain)
    words = _(domain.words) if domain is not None else criterion.domain
    concept_set = _set_name(expression, criterion.get("CodesetId"), concepts=concepts)
    if not concept_set:
        text = _("any {what}").format(what=words)
    elif words[:1] in "aeiou":
        text = _("an {what} of {set}").format(what=words, set=concept_set)
    else:
        text = _("a {what} of {set}").format(what=words, set=concept_set)
    if criterion.get("First"):
        text += _(", the first in the person's history")
    value = _range_words(criterion.get("ValueAsNumber"), _OPS)
    if value:
        text += _(", with a value {range}").format(range=value)
    if domain is not None:
        dates = _range_words(criterion.get(domain.start_dates), _DATE_OPS)
        if dates:
            text += _(", starting {range}").format(range=dates)
        age = _range_words(criterion.get(domain.age_attribute), _OPS)
        if age:
            text += _(", at an age of {range}").format(range=age)
    genders = _gender_words(criterion.get("Gender"))
    if genders:
        text += _(", in a {gender} person").format(gender=genders)
    return text


def _endpoint_words(endpoint: Endpoint) -> str:
    if endpoint.days == 0:
        return _("the index date")
    before = endpoint.coeff < 0
    return (_("{days} days before the index date") if before else _("{days} days after the index date")).format(
        days=endpoint.days
    )


def _window_words(window: Window, which: str) -> str:
    """A window in words: "starting between 365 days before the index date and the index date"; an open end
    reads "on or after" / "on or before"."""
    start, end = window.start, window.end
    if start.days is None and end.days is None:
        return _("{which} at any time").format(which=which)
    if start.days is None:
        return _("{which} on or before {end}").format(which=which, end=_endpoint_words(end))
    if end.days is None:
        return _("{which} on or after {start}").format(which=which, start=_endpoint_words(start))
    return _("{which} between {start} and {end}").format(
        which=which, start=_endpoint_words(start), end=_endpoint_words(end)
    )


def correlated_words(expression: CohortExpression, correlated: CorrelatedCriteria, *, concepts: bool = False) -> str:
    """ "at least 2 × a measurement of “HbA1c” with a value above 7, starting between 365 days before the index
    date and the index date"."""
    occurrence = correlated.occurrence
    kind = {Occurrence.EXACTLY: _("exactly"), Occurrence.AT_MOST: _("at most")}.get(occurrence.type, _("at least"))
    text = f"{kind} {occurrence.count} × {criterion_words(expression, correlated.criteria, concepts=concepts)}"
    text += ", " + _window_words(correlated.start_window, _("starting"))
    if correlated.end_window is not None:
        text += ", " + _window_words(correlated.end_window, _("ending"))
    if correlated.restrict_visit:
        text += _(", in the same visit")
    if correlated.ignore_observation_period:
        text += _(", even outside the observation period")
    return text


def _demographic_words(demographic: DemographicCriteria) -> str:
    parts = []
    age = _range_words(demographic.age, _OPS)
    if age:
        parts.append(_("aged {range}").format(range=age))
    genders = _gender_words(demographic.gender)
    if genders:
        parts.append(genders)
    return _("the person is {what} at the index date").format(what=", ".join(parts) or _("of any age and gender"))


def _group_lead(group: CriteriaGroup) -> str:
    return {
        "ALL": _("all of"),
        "ANY": _("any of"),
        "AT_LEAST": _("at least {n} of").format(n=group.count),
        "AT_MOST": _("at most {n} of").format(n=group.count),
    }[group.type]


def _group_parts(expression: CohortExpression, group: CriteriaGroup, *, concepts: bool = False) -> list[str]:
    """One phrase per member of a group; a nested group reads as its sentence in brackets."""
    parts = [correlated_words(expression, c, concepts=concepts) for c in group.criteria_list]
    parts += [_demographic_words(d) for d in group.demographic_criteria_list]
    parts += [f"({group_sentence(expression, g, concepts=concepts)})" for g in group.groups]
    return parts


def group_sentence(expression: CohortExpression, group: CriteriaGroup, *, concepts: bool = False) -> str:
    """A criteria group in words: "all of: …; …" (nested groups in brackets)."""
    parts = _group_parts(expression, group, concepts=concepts)
    if not parts:
        return _("no criteria yet: every person passes")
    return f"{_group_lead(group)}: " + "; ".join(parts)


# --- the blocks of an expression --------------------------------------------------------------------------------


def concept_set_sentence(concept_set: ConceptSet) -> str:
    """ "2 concept(s), 1 with all their descendants, minus 1 excluded concept(s)." """
    if not concept_set.items:
        return _("No concepts yet: criteria using this set match nothing.")
    included = [item for item in concept_set.items if not item.is_excluded]
    excluded = len(concept_set.items) - len(included)
    text = _("{n} concept(s)").format(n=len(included))
    descendants = sum(1 for item in included if item.include_descendants)
    if descendants:
        text += _(", {n} with all their descendants").format(n=descendants)
    mapped = sum(1 for item in included if item.include_mapped)
    if mapped:
        text += _(", {n} with the source codes mapped to them").format(n=mapped)
    if excluded:
        text += _(", minus {n} excluded concept(s)").format(n=excluded)
    return text + "."


def _entry_lead(expression: CohortExpression) -> str:
    limit = {"FIRST": _("the earliest"), "LAST": _("the latest")}.get(expression.primary_criteria.limit, _("each"))
    return _("A person enters the cohort at {limit} of these events:").format(limit=limit)


def _observation_sentence(expression: CohortExpression) -> str:
    primary = expression.primary_criteria
    if not (primary.prior_days or primary.post_days):
        return ""
    return _("The event needs at least {prior} days of observation before it and {post} days after it.").format(
        prior=primary.prior_days, post=primary.post_days
    )


def _qualified_sentence(expression: CohortExpression) -> str:
    if not expression.inclusion_rules:
        return ""
    return {
        "FIRST": _("Of the events that pass the rules, the earliest per person is kept."),
        "LAST": _("Of the events that pass the rules, the latest per person is kept."),
    }.get(expression.qualified_limit, _("Every event that passes the rules is kept."))


def entry_sentence(expression: CohortExpression) -> str:
    """The entry events, which of a person's events are kept, and the observation they need."""
    criteria = [criterion_words(expression, c) for c in expression.primary_criteria.criteria_list]
    if not criteria:
        return _("No entry event yet: add one.")
    sentences = [f"{_entry_lead(expression)} {_('; or ').join(criteria)}."]
    sentences += [s for s in (_observation_sentence(expression), _qualified_sentence(expression)) if s]
    return " ".join(sentences)


def rule_sentence(expression: CohortExpression, rule: InclusionRule) -> str:
    return _("Keeps the entry events where {group}.").format(group=group_sentence(expression, rule.expression))


def exit_words(expression: CohortExpression) -> str:
    """The exit strategy in a few words: "30 days after the event's StartDate" (the summary's "Cohort exit: …",
    and what a change of exit strategy between two versions reads)."""
    strategy = expression.end_strategy
    if isinstance(strategy, DateOffsetStrategy):
        return _("{days} days after the event's {field}").format(days=strategy.offset, field=strategy.date_field)
    if isinstance(strategy, CustomEraStrategy):
        return _("at the end of the continuous drug exposure era")
    return _("at the end of the observation period of the entry event")


def exit_sentence(expression: CohortExpression) -> str:
    """When a person leaves, in full: the exit strategy, censoring events, era collapsing, the censor window."""
    strategy = expression.end_strategy
    if isinstance(strategy, DateOffsetStrategy):
        field_words = _("end") if strategy.date_field == "EndDate" else _("start")
        text = _("The person leaves the cohort {days} days after the entry event's {field} date").format(
            days=strategy.offset, field=field_words
        )
        text += _(" (or at the end of observation, if earlier).")
    elif isinstance(strategy, CustomEraStrategy):
        drug = _set_name(expression, strategy.drug_codeset_id) or _("the chosen drugs")
        text = _(
            "The person leaves the cohort at the end of continuous exposure to {drug} (gaps of up to {gap} days "
            "bridged), plus {offset} days."
        ).format(drug=drug, gap=strategy.gap_days, offset=strategy.offset)
    else:
        text = _("The person leaves the cohort at the end of the observation period of the entry event.")
    censoring = [criterion_words(expression, c) for c in expression.censoring_criteria]
    if censoring:
        text += " " + _("They leave earlier at {events}.").format(events=_("; or ").join(censoring))
    if expression.era_pad:
        text += " " + _("Cohort periods less than {n} days apart are joined.").format(n=expression.era_pad)
    window = expression.censor_window
    if window is not None:
        text += " " + _("Cohort periods are cut to {start} – {end}.").format(
            start=window.start_date or "…", end=window.end_date or "…"
        )
    return text


# --- what the pages and the builder show ------------------------------------------------------------------------


def expression_summary(expression: CohortExpression | dict[str, Any], *, concepts: bool = True) -> dict[str, Any]:
    """What an expression means, in parts a page lays out: ``entry_lead`` and ``entry`` (one line per entry
    event), ``observation`` and ``qualified`` (sentences, or ""), ``rules`` (name, description, ``combine`` and one
    line per member), ``censoring`` (lines) and ``exit``.

    ``concepts``: each criterion names the concepts of its set; the comparison of versions leaves them out (a
    changed set is said once, under concept sets). A rule that is not valid keeps its place, without lines."""
    draft = _as_draft(expression)
    typed = draft.expression
    rules = []
    for rule in draft.inclusion_rules:
        if rule is None:
            rules.append({"name": _("unnamed rule"), "description": "", "combine": _("not valid"), "lines": []})
            continue
        rules.append(
            {
                "name": rule.name or _("unnamed rule"),
                "description": rule.description or "",
                "combine": _group_lead(rule.expression),
                "lines": _group_parts(typed, rule.expression, concepts=concepts),
            }
        )
    return {
        "entry_lead": _entry_lead(typed),
        "entry": [criterion_words(typed, c, concepts=concepts) for c in typed.primary_criteria.criteria_list],
        "observation": _observation_sentence(typed),
        "qualified": _qualified_sentence(typed),
        "rules": rules,
        "censoring": [criterion_words(typed, c, concepts=concepts) for c in typed.censoring_criteria],
        "exit": exit_words(typed),
    }


def block_sentences(draft: Draft) -> dict[str, str]:
    """The sentence under each block of the builder, keyed by block (``entry``, ``concept-set-0``, ``rule-1``,
    ``exit``). A concept set or rule that is not valid has no sentence: its block shows its errors instead."""
    expression = draft.expression
    sentences = {"entry": entry_sentence(expression), "exit": exit_sentence(expression)}
    for i, concept_set in enumerate(draft.concept_sets):
        if concept_set is not None:
            sentences[f"concept-set-{i}"] = concept_set_sentence(concept_set)
    for i, rule in enumerate(draft.inclusion_rules):
        if rule is not None:
            sentences[f"rule-{i}"] = rule_sentence(expression, rule)
    return sentences
