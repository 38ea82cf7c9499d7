"""What changed between two versions of a definition, said in sentences.

Two Circe (ATLAS) expressions are compared part by part — concept sets, entry events, observation window,
limits, inclusion rules, censoring, exit strategy, era collapsing — and each difference becomes one sentence a
researcher can read without knowing the JSON ("Inclusion rule 'HbA1c > 7%' added", "Observation window before
index: 365 → 730 days"). Criteria are described by the one describer (``cohorts.definitions.describe``), so a change
reads the same way the definition page says the expression. Whatever this module does not know is still reported
("Other settings changed: …"): a diff that stays silent about a change would be worse than a vague one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cohorts.definitions.describe import expression_summary

#: Top-level keys compared here; any other key that differs is reported generically.
KNOWN_KEYS = frozenset(
    {
        "ConceptSets",
        "PrimaryCriteria",
        "QualifiedLimit",
        "ExpressionLimit",
        "InclusionRules",
        "CensoringCriteria",
        "EndStrategy",
        "CensorWindow",
        "CollapseSettings",
        "Title",
        "cdmVersionRange",
    }
)
#: The notes the portal writes itself on a version when its author gives none, said in the reader's language.
_PORTAL_NOTES = {"created": gettext_noop("created"), "saved in the builder": gettext_noop("saved in the builder")}
_RESTORED = re.compile(r"^restored from version (\d+)$")
_COPIED = re.compile(r"^copy of definition (\d+) version (\d+)$")


def version_note_words(note: str) -> str:
    """A version's note as the pages show it: the author's words as written; the portal's own notes ("created",
    "restored from version 2", …) translated."""
    if note in _PORTAL_NOTES:
        return _(_PORTAL_NOTES[note])
    restored = _RESTORED.match(note)
    if restored:
        return _("restored from version {number}").format(number=restored.group(1))
    copied = _COPIED.match(note)
    if copied:
        return _("copy of definition {definition} version {number}").format(
            definition=copied.group(1), number=copied.group(2)
        )
    return note


#: How many concepts a sentence names before it says "and N more".
NAMED_CONCEPTS = 5

ITEM_FLAGS = (
    ("includeDescendants", gettext_noop("include descendants")),
    ("includeMapped", gettext_noop("include mapped")),
    ("isExcluded", gettext_noop("exclude")),
)


@dataclass(frozen=True)
class Change:
    """One difference: the part of the expression it is in, and the sentence saying it."""

    section: str
    text: str


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _concept_label(item: dict[str, Any]) -> str:
    concept = item.get("concept") or {}
    name = concept.get("CONCEPT_NAME")
    concept_id = concept.get("CONCEPT_ID")
    return f"{name} ({concept_id})" if name else str(concept_id)


def _named(labels: list[str]) -> str:
    shown = ", ".join(labels[:NAMED_CONCEPTS])
    rest = len(labels) - NAMED_CONCEPTS
    return shown + (_(" and %(n)d more") % {"n": rest} if rest > 0 else "")


def _plural_concepts(n: int) -> str:
    return _("1 concept") if n == 1 else _("%(n)d concepts") % {"n": n}


def _concept_set_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    section = _("Concept sets")
    changes: list[Change] = []
    old_by_id = {cs.get("id"): cs for cs in old}
    new_by_id = {cs.get("id"): cs for cs in new}
    for set_id, before in old_by_id.items():
        if set_id not in new_by_id:
            changes.append(Change(section, _("Concept set '%(name)s' removed") % {"name": before.get("name", set_id)}))
    for set_id, after in new_by_id.items():
        name = after.get("name", set_id)
        before = old_by_id.get(set_id)
        items = (after.get("expression") or {}).get("items") or []
        if before is None:
            changes.append(
                Change(
                    section,
                    _("Concept set '%(name)s' added with %(concepts)s (%(list)s)")
                    % {
                        "name": name,
                        "concepts": _plural_concepts(len(items)),
                        "list": _named([_concept_label(i) for i in items]),
                    },
                )
            )
            continue
        if before.get("name") != after.get("name"):
            changes.append(
                Change(
                    section,
                    _("Concept set '%(old)s' renamed to '%(new)s'") % {"old": before.get("name"), "new": name},
                )
            )
        changes += _concept_item_changes(str(name), (before.get("expression") or {}).get("items") or [], items)
    return changes


def _concept_item_changes(name: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    section = _("Concept sets")
    key = lambda item: (item.get("concept") or {}).get("CONCEPT_ID")  # noqa: E731
    old_items = {key(i): i for i in old}
    new_items = {key(i): i for i in new}
    parts: list[str] = []
    added = [_concept_label(i) for k, i in new_items.items() if k not in old_items]
    removed = [_concept_label(i) for k, i in old_items.items() if k not in new_items]
    if added:
        parts.append(
            _("%(concepts)s added (%(list)s)") % {"concepts": _plural_concepts(len(added)), "list": _named(added)}
        )
    if removed:
        parts.append(
            _("%(concepts)s removed (%(list)s)") % {"concepts": _plural_concepts(len(removed)), "list": _named(removed)}
        )
    for flag, words in ITEM_FLAGS:
        turned_on, turned_off = [], []
        for concept_id, after in new_items.items():
            before = old_items.get(concept_id)
            if before is None:
                continue
            was, now = bool(before.get(flag)), bool(after.get(flag))
            if now and not was:
                turned_on.append(_concept_label(after))
            elif was and not now:
                turned_off.append(_concept_label(after))
        if turned_on:
            parts.append(_("%(flag)s turned on for %(list)s") % {"flag": _(words), "list": _named(turned_on)})
        if turned_off:
            parts.append(_("%(flag)s turned off for %(list)s") % {"flag": _(words), "list": _named(turned_off)})
    if not parts:
        return []
    return [Change(section, _("Concept set '%(name)s': %(what)s") % {"name": name, "what": "; ".join(parts)})]


def _line_changes(section: str, what: str, old: list[str], new: list[str]) -> list[Change]:
    """Sentences present in one list and not the other (order kept), as added / removed."""
    changes = [
        Change(section, _("%(what)s removed: %(line)s") % {"what": what, "line": line})
        for line in old
        if line not in new
    ]
    changes += [
        Change(section, _("%(what)s added: %(line)s") % {"what": what, "line": line}) for line in new if line not in old
    ]
    return changes


def _days(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _primary_changes(
    old: dict[str, Any], new: dict[str, Any], old_sum: dict[str, Any], new_sum: dict[str, Any]
) -> list[Change]:
    section = _("Entry events")
    old_primary, new_primary = old.get("PrimaryCriteria") or {}, new.get("PrimaryCriteria") or {}
    changes = _line_changes(section, _("Entry event"), old_sum["entry"], new_sum["entry"])
    if not changes and _canonical(old_primary.get("CriteriaList")) != _canonical(new_primary.get("CriteriaList")):
        changes.append(Change(section, _("Entry event criteria changed (details not shown in words)")))
    old_window, new_window = old_primary.get("ObservationWindow") or {}, new_primary.get("ObservationWindow") or {}
    for key, words in (("PriorDays", _("before index")), ("PostDays", _("after index"))):
        before, after = _days(old_window.get(key)), _days(new_window.get(key))
        if before != after:
            changes.append(
                Change(
                    section,
                    _("Observation window %(where)s: %(old)d → %(new)d days")
                    % {"where": words, "old": before, "new": after},
                )
            )
    limits = (
        (
            _("Entry events per person"),
            (old_primary.get("PrimaryCriteriaLimit") or {}),
            (new_primary.get("PrimaryCriteriaLimit") or {}),
        ),
        (_("Qualifying events per person"), old.get("QualifiedLimit") or {}, new.get("QualifiedLimit") or {}),
        (_("Cohort entries per person"), old.get("ExpressionLimit") or {}, new.get("ExpressionLimit") or {}),
    )
    for words, before, after in limits:
        was, now = (before.get("Type") or "All"), (after.get("Type") or "All")
        if was.lower() != now.lower():
            changes.append(Change(section, _("%(what)s: %(old)s → %(new)s") % {"what": words, "old": was, "new": now}))
    return changes


def _rule_changes(
    old: dict[str, Any], new: dict[str, Any], old_sum: dict[str, Any], new_sum: dict[str, Any]
) -> list[Change]:
    section = _("Inclusion rules")
    old_rules = old.get("InclusionRules") or []
    new_rules = new.get("InclusionRules") or []
    old_names = [r.get("name") or "" for r in old_rules]
    new_names = [r.get("name") or "" for r in new_rules]
    changes: list[Change] = []
    for index, rule in enumerate(old_rules):
        if rule.get("name", "") not in new_names:
            changes.append(
                Change(section, _("Inclusion rule '%(name)s' removed") % {"name": old_sum["rules"][index]["name"]})
            )
    for index, rule in enumerate(new_rules):
        summary = new_sum["rules"][index]
        name = rule.get("name") or ""
        if name not in old_names:
            detail = "; ".join(summary["lines"])
            text = _("Inclusion rule '%(name)s' added") % {"name": summary["name"]}
            changes.append(Change(section, f"{text}: {summary['combine']} {detail}".rstrip(": ") if detail else text))
            continue
        old_index = old_names.index(name)
        before = old_rules[old_index]
        if _canonical(before.get("expression")) == _canonical(rule.get("expression")) and before.get(
            "description", ""
        ) == rule.get("description", ""):
            continue
        old_summary = old_sum["rules"][old_index]
        parts: list[str] = []
        if old_summary["combine"] != summary["combine"]:
            parts.append(
                _("now %(combine)s (was %(old)s)") % {"combine": summary["combine"], "old": old_summary["combine"]}
            )
        parts += [
            _("no longer: %(line)s") % {"line": line} for line in old_summary["lines"] if line not in summary["lines"]
        ]
        parts += [
            _("now also: %(line)s") % {"line": line} for line in summary["lines"] if line not in old_summary["lines"]
        ]
        if before.get("description", "") != rule.get("description", ""):
            parts.append(_("description changed"))
        if not parts:
            parts.append(_("its criteria changed (details not shown in words)"))
        changes.append(
            Change(
                section,
                _("Inclusion rule '%(name)s' changed: %(what)s") % {"name": summary["name"], "what": "; ".join(parts)},
            )
        )
    common_old = [n for n in old_names if n in new_names]
    common_new = [n for n in new_names if n in old_names]
    if common_old != common_new:
        changes.append(Change(section, _("Inclusion rules reordered: %(order)s") % {"order": ", ".join(common_new)}))
    return changes


def _exit_changes(
    old: dict[str, Any], new: dict[str, Any], old_sum: dict[str, Any], new_sum: dict[str, Any]
) -> list[Change]:
    section = _("Exit and censoring")
    changes = _line_changes(section, _("Censoring event"), old_sum["censoring"], new_sum["censoring"])
    if old_sum["exit"] != new_sum["exit"]:
        changes.append(
            Change(
                section,
                _("Exit strategy changed: %(old)s → %(new)s") % {"old": old_sum["exit"], "new": new_sum["exit"]},
            )
        )
    elif _canonical(old.get("EndStrategy")) != _canonical(new.get("EndStrategy")):
        changes.append(
            Change(
                section,
                _("Exit strategy settings changed: %(new)s") % {"new": _canonical(new.get("EndStrategy") or {})},
            )
        )
    old_window, new_window = old.get("CensorWindow") or {}, new.get("CensorWindow") or {}
    for key, words in (("StartDate", _("Censor window start")), ("EndDate", _("Censor window end"))):
        was, now = old_window.get(key), new_window.get(key)
        if was != now:
            changes.append(
                Change(
                    section,
                    _("%(what)s: %(old)s → %(new)s")
                    % {"what": words, "old": was or _("none"), "new": now or _("none")},
                )
            )
    old_pad = _days((old.get("CollapseSettings") or {}).get("EraPad"))
    new_pad = _days((new.get("CollapseSettings") or {}).get("EraPad"))
    if old_pad != new_pad:
        changes.append(
            Change(
                section, _("Gap allowed between cohort eras: %(old)d → %(new)d days") % {"old": old_pad, "new": new_pad}
            )
        )
    return changes


def expression_diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The differences from ``old`` to ``new``, in reading order (concept sets, entry, rules, exit), one
    sentence each. Empty when the expressions mean the same thing key for key."""
    # Concept sets named, not listed: a criterion reads the same in both versions when only the content of its
    # concept set changed (said once, under "Concept sets").
    old_sum, new_sum = expression_summary(old, concepts=False), expression_summary(new, concepts=False)
    changes = _concept_set_changes(old.get("ConceptSets") or [], new.get("ConceptSets") or [])
    changes += _primary_changes(old, new, old_sum, new_sum)
    changes += _rule_changes(old, new, old_sum, new_sum)
    changes += _exit_changes(old, new, old_sum, new_sum)
    other = sorted(
        key for key in (set(old) | set(new)) - KNOWN_KEYS if _canonical(old.get(key)) != _canonical(new.get(key))
    )
    if other:
        changes.append(Change(_("Other"), _("Other settings changed: %(keys)s") % {"keys": ", ".join(other)}))
    return changes
