"""Privacy of results: every count passes through here before it leaves the service layer.

Rules, per source:
- a minimum cell size (default 10): a count from 1 to size-1 is shown as "<10", never the number;
- complementary suppression: in a group of cells that add up to a shown total (demographic buckets, the
  per-site counts of a federated total), hiding one cell alone would let anyone recover it by subtraction,
  so the next smallest cell is hidden too until at least two are hidden (or the total itself is hidden);
- rounding (to the nearest 10 by default) on top, for pharma partners and any role the source marks
  "aggregate only".
The rule applied is returned with the numbers, so the UI can show it next to each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MIN_CELL = 10
DEFAULT_ROUND_TO = 10


@dataclass(frozen=True)
class PrivacyRule:
    min_cell: int = DEFAULT_MIN_CELL
    round_to: int = 1  # 1 = no rounding

    def describe(self) -> str:
        text = f"counts under {self.min_cell} hidden"
        if self.round_to > 1:
            text += f", rounded to the nearest {self.round_to}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"min_cell": self.min_cell, "round_to": self.round_to, "description": self.describe()}


@dataclass(frozen=True)
class ProtectedCount:
    value: int | None  # None when hidden
    display: str
    hidden: bool

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "display": self.display, "hidden": self.hidden}


def rule_for(*, source: Any, role: str) -> PrivacyRule:
    """The rule of a source for a role: the source's minimum cell size for everyone, and its rounding on top
    for the roles it marks aggregate-only (pharma partners by default)."""
    min_cell = int(source.min_cell_size or DEFAULT_MIN_CELL)
    aggregate_only = set(source.aggregate_only_roles if source.aggregate_only_roles is not None else ["partner"])
    round_to = int(source.round_to or DEFAULT_ROUND_TO) if role in aggregate_only else 1
    return PrivacyRule(min_cell=max(1, min_cell), round_to=max(1, round_to))


def strictest(rules: Iterable[PrivacyRule]) -> PrivacyRule:
    rules = list(rules)
    if not rules:
        return PrivacyRule()
    return PrivacyRule(min_cell=max(r.min_cell for r in rules), round_to=max(r.round_to for r in rules))


def protect(count: int, rule: PrivacyRule) -> ProtectedCount:
    if count <= 0:
        return ProtectedCount(0, "0", False)
    if count < rule.min_cell:
        return ProtectedCount(None, f"<{rule.min_cell}", True)
    if rule.round_to > 1:
        # Half up, and never below the threshold (rounding 12 down to 10 is fine, 10 stays 10).
        rounded = max(rule.min_cell, ((count + rule.round_to // 2) // rule.round_to) * rule.round_to)
        return ProtectedCount(rounded, f"{rounded:,}", False)
    return ProtectedCount(count, f"{count:,}", False)


def hidden(rule: PrivacyRule) -> ProtectedCount:
    return ProtectedCount(None, f"<{rule.min_cell}" if rule.min_cell > 1 else "hidden", True)


def protect_group(
    total: int | None, cells: Sequence[int], rule: PrivacyRule
) -> tuple[ProtectedCount | None, list[ProtectedCount]]:
    """Protect cells that add up to ``total`` (or that partition a shown total) with complementary
    suppression. Returns the protected total (None when no total is given) and the cells in order."""
    protected = [protect(c, rule) for c in cells]
    shown_total = protect(total, rule) if total is not None else None
    total_visible = shown_total is not None and not shown_total.hidden
    hidden_idx = [i for i, p in enumerate(protected) if p.hidden]
    if total_visible and len(hidden_idx) == 1:
        # One hidden cell = total minus the others: hide the next smallest non-zero visible cell too.
        candidates = sorted(
            (c, i) for i, (c, p) in enumerate(zip(cells, protected, strict=True)) if not p.hidden and c > 0
        )
        if candidates:
            _, j = candidates[0]
            protected[j] = hidden(rule)
        else:
            shown_total = hidden(rule)
    return shown_total, protected
