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

Across sites (``merged_attrition``): each number is the sites' cells summed into one cell and released like the
merged total (``protect_federated``: its own cell key, the strictest rule, "visible sites + <10" where a part is
hidden), shown only when every site shows its own attrition; lost and % again from the released numbers.

Results stored before the initial row and the by-event mode were computed have neither: their table starts at the
first rule (its lost and % not available) and offers the person mode only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from disclosure.rules import Cell, PrivacyRule, protect_cell, protect_federated, strictest

#: The modes of the attrition: Circe's by-person (mode 1) and by-event (mode 0) inclusion statistics.
MODES = ("person", "event")

#: What a derived number (lost, %) is when an operand is hidden: no number.
HIDDEN = {"value": None, "display": "hidden", "hidden": True}
#: What it is when an operand is missing (a result stored before the initial row): nothing to show.
UNAVAILABLE = {"value": None, "display": "", "hidden": False}


def _key(value: Any) -> int | None:
    return None if value is None else int(value)


class Released(Protocol):
    """A released count: ``ProtectedCount`` (one site) or ``FederatedTotal`` (several sites)."""

    value: int | None
    display: str
    hidden: bool

    def as_dict(self) -> dict[str, Any]: ...


#: The cells of one mode at one site: the initial cell (or None), each step's name and cell, each rule's own cell.
_ModeCells = tuple[Cell | None, list[tuple[str, Cell]], list[Cell]]


def _lost(before: Released | None, after: Released) -> dict[str, Any]:
    """Released ``before`` minus released ``after``; hidden when either is hidden."""
    if before is None:
        return dict(UNAVAILABLE)
    if before.hidden or after.hidden or before.value is None or after.value is None:
        return dict(HIDDEN)
    value = max(before.value - after.value, 0)
    return {"value": value, "display": f"{value:,}", "hidden": False}


def _percent(part: Released, whole: Released | None) -> dict[str, Any]:
    """Released ``part`` as a % of released ``whole`` (one decimal); hidden when either is hidden."""
    if whole is None or (not whole.hidden and whole.value == 0):
        return dict(UNAVAILABLE)
    if part.hidden or whole.hidden or part.value is None or whole.value is None:
        return dict(HIDDEN)
    value = min(round(100 * part.value / whole.value, 1), 100.0)
    return {"value": value, "display": f"{value:.1f}%", "hidden": False}


def _mode_cells(result: dict[str, Any], mode: str) -> _ModeCells | None:
    """The true cells (count, cell key) of one mode of a run's stored result; None for a mode it lacks."""
    if mode == "person":
        initial, stats, unit = result.get("initial"), result, "persons"
    else:
        stats = result.get("by_event")
        if not isinstance(stats, dict):
            return None
        initial, unit = stats.get("initial"), "events"
    first = (int(initial[unit]), _key(initial.get("key"))) if isinstance(initial, dict) and unit in initial else None
    steps = [(str(s["name"]), (int(s[unit]), _key(s.get("key")))) for s in stats.get("attrition", [])]
    alone = [(int(s[unit]), _key(s.get("key"))) for s in stats.get("inclusion_rules", [])]
    return first, steps, alone


def _mode_table(initial: Released | None, steps: list[tuple[str, Released]], alone: list[Released]) -> dict[str, Any]:
    """The rows of one mode from its released counts: the initial row (or None), each step's name and kept
    count, each rule's own count, in rule order; lost and percentages from those alone."""
    rows = []
    before = initial
    for index, (name, kept) in enumerate(steps):
        own = alone[index] if index < len(alone) else None
        rows.append(
            {
                "step": index + 1,
                "name": name,
                "kept": kept.as_dict(),
                "lost": _lost(before, kept),
                "percent": _percent(kept, initial),
                "own": own.as_dict() if own is not None else dict(UNAVAILABLE),
                "own_percent": _percent(own, initial) if own is not None else dict(UNAVAILABLE),
            }
        )
        before = kept
    return {
        "initial": initial.as_dict() if initial is not None else None,
        "initial_percent": _percent(initial, initial) if initial is not None else dict(UNAVAILABLE),
        "steps": rows,
    }


def protected_attrition(result: dict[str, Any], rule: PrivacyRule) -> dict[str, Any]:
    """A site's attrition table as it may be released under ``rule`` (the site's rule for the reader), from its
    run's stored ``result``: ``{"person": table, "event": table or None}``, each table ``{"initial",
    "initial_percent", "steps"}`` (see the module's docstring). The caller withholds it whole when the site's total
    is hidden."""
    out: dict[str, Any] = {}
    for mode in MODES:
        cells = _mode_cells(result, mode)
        if cells is None:
            out[mode] = None
            continue
        first, steps, alone = cells
        out[mode] = _mode_table(
            protect_cell(first, rule) if first is not None else None,
            [(name, protect_cell(cell, rule)) for name, cell in steps],
            [protect_cell(cell, rule) for cell in alone],
        )
    return out


def merged_attrition(parts: Sequence[tuple[dict[str, Any], PrivacyRule]]) -> dict[str, Any] | None:
    """The attrition of several sites together (their runs' stored results and their rules for the reader), or
    None when their steps do not line up (different rules: never for one request).

    Each number is the sites' cells summed into one cell (counts and cell keys add up) and released as the merged
    total is (``disclosure.rules.protect_federated``): perturbed with its own key under the strictest of the
    sites' rules, and "visible sites + <10" — hidden, no number — where a site's part is hidden, so no subtraction
    of a site's own numbers gives back a hidden one. Lost and percentages come from these released numbers, as
    for a site. A mode or initial row that one of the sites lacks (a result stored before it) is left out. The
    caller gives only sites whose own attrition is shown (a hidden site total withholds the merged attrition, as
    it hides the merged total)."""
    rules = [rule for _, rule in parts]

    def released(cells: list[Cell]) -> Released:
        total, _ = protect_federated(cells, rules)
        return total

    out: dict[str, Any] = {}
    for mode in MODES:
        per_site = [_mode_cells(result, mode) for result, _ in parts]
        if any(cells is None for cells in per_site):
            out[mode] = None
            continue
        sites = [cells for cells in per_site if cells is not None]
        names = [name for name, _ in sites[0][1]]
        if any([name for name, _ in cells[1]] != names or len(cells[2]) != len(names) for cells in sites):
            return None
        firsts = [cells[0] for cells in sites]
        initial = released([c for c in firsts if c is not None]) if all(c is not None for c in firsts) else None
        out[mode] = _mode_table(
            initial,
            [(name, released([cells[1][i][1] for cells in sites])) for i, name in enumerate(names)],
            [released([cells[2][i] for cells in sites]) for i in range(len(names))],
        )
    out["privacy"] = strictest(rules).as_dict()
    return out


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
