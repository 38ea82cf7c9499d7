"""A site's attrition as ATLAS shows it, under the site's disclosure rule: the initial persons (or events) before
any inclusion rule, then each rule's step — kept, lost since the step before, % of the initial — beside the
rule's own count (meeting that rule alone) and its %, by person (Circe's mode 1) and by event (mode 0).

Disclosure: every count (initial, kept, rule alone) is released by ``disclosure.rules.protect`` as a cell of its
own with its own cell key, as the worker read it. The other numbers — lost, and the percentages — are worked out
here from those *released* numbers only, never from a true count: they say nothing that the released numbers do
not say already (anyone could subtract or divide them), so they cannot reveal a hidden count. Where an operand is
hidden (a "<10", or a count not released for want of a key) the derived number is hidden too, never a number:
``lost = previous − kept`` with the previous step shown and the kept one hidden would hand back the hidden step,
and with the kept one shown and the previous hidden, the previous one. A hidden step therefore hides the lost and
% of its own row and the lost of the next row.

Perturbation gives each cell its own noise, so two released steps of nearly the same persons may come out in the
"wrong" order; a lost below zero is shown as 0 and a percentage above 100 as 100 (a function of released numbers
only, like any other). Without a shown total a site has no attrition at all (``run_request_result`` withholds it):
the steps, initial row included, would describe fewer persons than the threshold.

Results stored before the initial row and the by-event mode were computed have neither: their table starts at the
first rule (its lost and % not available) and offers the person mode only.
"""

from __future__ import annotations

from typing import Any

from disclosure.rules import PrivacyRule, ProtectedCount, protect

#: The modes of the attrition: Circe's by-person (mode 1) and by-event (mode 0) inclusion statistics.
MODES = ("person", "event")

#: What a derived number (lost, %) is when an operand is hidden: no number.
HIDDEN = {"value": None, "display": "hidden", "hidden": True}
#: What it is when an operand is missing (a result stored before the initial row): nothing to show.
UNAVAILABLE = {"value": None, "display": "", "hidden": False}


def _key(value: Any) -> int | None:
    return None if value is None else int(value)


def _released(count: Any, key: Any, rule: PrivacyRule) -> ProtectedCount:
    return protect(int(count), rule, _key(key))


def _lost(before: ProtectedCount | None, after: ProtectedCount) -> dict[str, Any]:
    """Released ``before`` minus released ``after``; hidden when either is hidden."""
    if before is None:
        return dict(UNAVAILABLE)
    if before.hidden or after.hidden or before.value is None or after.value is None:
        return dict(HIDDEN)
    value = max(before.value - after.value, 0)
    return {"value": value, "display": f"{value:,}", "hidden": False}


def _percent(part: ProtectedCount, whole: ProtectedCount | None) -> dict[str, Any]:
    """Released ``part`` as a % of released ``whole`` (one decimal); hidden when either is hidden."""
    if whole is None or (not whole.hidden and whole.value == 0):
        return dict(UNAVAILABLE)
    if part.hidden or whole.hidden or part.value is None or whole.value is None:
        return dict(HIDDEN)
    value = min(round(100 * part.value / whole.value, 1), 100.0)
    return {"value": value, "display": f"{value:.1f}%", "hidden": False}


def _mode_table(
    initial: tuple[Any, Any] | None,
    steps: list[tuple[str, Any, Any]],
    alone: list[tuple[Any, Any]],
    rule: PrivacyRule,
) -> dict[str, Any]:
    """The rows of one mode: ``initial`` (count, key) or None, each step's (name, count, key) and each rule's own
    (count, key), in rule order."""
    shown_initial = _released(*initial, rule) if initial is not None else None
    rows = []
    before = shown_initial
    for index, (name, count, key) in enumerate(steps):
        kept = _released(count, key, rule)
        own = _released(*alone[index], rule) if index < len(alone) else None
        rows.append(
            {
                "step": index + 1,
                "name": name,
                "kept": kept.as_dict(),
                "lost": _lost(before, kept),
                "percent": _percent(kept, shown_initial),
                "own": own.as_dict() if own is not None else dict(UNAVAILABLE),
                "own_percent": _percent(own, shown_initial) if own is not None else dict(UNAVAILABLE),
            }
        )
        before = kept
    return {
        "initial": shown_initial.as_dict() if shown_initial is not None else None,
        "initial_percent": _percent(shown_initial, shown_initial) if shown_initial is not None else dict(UNAVAILABLE),
        "steps": rows,
    }


def protected_attrition(result: dict[str, Any], rule: PrivacyRule) -> dict[str, Any]:
    """A site's attrition table as it may be released under ``rule`` (the site's rule for the reader), from its
    run's stored ``result``: ``{"person": table, "event": table or None}``, each table ``{"initial", "steps"}``
    (see the module's docstring). The caller withholds it whole when the site's total is hidden."""
    initial = result.get("initial")
    person = _mode_table(
        (initial["persons"], initial.get("key")) if isinstance(initial, dict) else None,
        [(s["name"], s["persons"], s.get("key")) for s in result.get("attrition", [])],
        [(s["persons"], s.get("key")) for s in result.get("inclusion_rules", [])],
        rule,
    )
    by_event = result.get("by_event")
    event = None
    if isinstance(by_event, dict):
        first = by_event.get("initial") or {}
        event = _mode_table(
            (first["events"], first.get("key")) if "events" in first else None,
            [(s["name"], s["events"], s.get("key")) for s in by_event.get("attrition", [])],
            [(s["events"], s.get("key")) for s in by_event.get("inclusion_rules", [])],
            rule,
        )
    return {"person": person, "event": event}


#: The attrition CSV's columns (``attrition_csv_rows``).
CSV_HEADER = [
    "site",
    "mode",
    "step",
    "rule",
    "persons",
    "events",
    "lost",
    "percent of initial",
    "rule alone",
    "rule alone percent of initial",
    "privacy rule",
]


def _number(cell: dict[str, Any] | None) -> int | float | str:
    """A released or derived number as a number (a spreadsheet sums it); a hidden one as its words ("<10",
    "hidden"), never a number; a missing one empty."""
    if not cell:
        return ""
    value = cell.get("value")
    if value is not None:
        return value
    return str(cell.get("display") or "")


def attrition_csv_rows(source: str, table: dict[str, Any], privacy: str) -> list[list[Any]]:
    """The CSV rows of one site's attrition table (``protected_attrition``): per mode, the initial row (step 0)
    then each rule's step, numbers as numbers and percentages as numbers of percent. A row by person has its count
    under "persons", a row by event under "events"."""
    rows: list[list[Any]] = []
    for mode in MODES:
        shown = table.get(mode)
        if shown is None:
            continue

        def counted(cell: dict[str, Any] | None, mode: str = mode) -> list[Any]:
            return [_number(cell), ""] if mode == "person" else ["", _number(cell)]

        if shown["initial"] is not None:
            percent = _number(shown["initial_percent"])
            rows.append([source, mode, 0, "initial", *counted(shown["initial"]), "", percent, "", "", privacy])
        for step in shown["steps"]:
            rows.append(
                [
                    source,
                    mode,
                    step["step"],
                    step["name"],
                    *counted(step["kept"]),
                    _number(step["lost"]),
                    _number(step["percent"]),
                    _number(step["own"]),
                    _number(step["own_percent"]),
                    privacy,
                ]
            )
    return rows
