"""Disclosure rules: every count passes through here before it leaves the service layer.

Rules, per source (its ``DisclosurePolicy``; ``disclosure.selectors.rule_for`` gives the rule of a role):
- a minimum cell size (default 10): a count from 1 to size-1 is shown as "<10", never the number;
- complementary suppression: in a group of cells that add up to a shown total (demographic buckets), hiding one
  cell alone would let anyone recover it by subtraction, so the next smallest cell is hidden too until at least
  two are hidden (or the total itself is hidden). A cell hidden that way is shown exactly like a small one ("<10"),
  with no mark: a mark would point at the other, genuinely small cell;
- a federated total (several sites) is never more exact than its parts: when a site's count is hidden, the total
  is shown as "the visible sites + <10", so the difference between two requests (all sites, then all but one)
  cannot recover a hidden site's count either;
- rounding (to the nearest 10 by default) on top, for pharma partners and any role the source marks
  "aggregate only".
The rule applied is returned with the numbers, so the UI can show it next to each of them.

Breakdowns (``protect_breakdown``: a cohort by age group and sex, race, ethnicity, year of index):
- no breakdown without a shown total: when the cohort's count is hidden, its breakdown is withheld whole, since
  even which buckets have members is a profile of fewer than 10 persons;
- the buckets are fixed (every category, whether or not it has members, in a fixed order, never by size), so that
  the presence or the order of a bucket reveals nothing;
- an empty bucket is shown as "<10" like any hidden cell, not as "0". Showing 0 would reveal least only if every
  cell could be 0, but next to "<10" it splits the categories into "has members" and "has none": exactly the
  presence of a bucket that fixed categories are there to hide (a cohort of 40 with "race: Black <10" and every
  other small race "0" names the race of its few non-White members). So "<10" in a breakdown means hidden: none,
  a few, or a larger cell hidden as the complement of a small one. Only a cohort whose total is 0 shows its
  buckets as 0, which the total already says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext

from disclosure.cellkey import perturb
from disclosure.ptable import KEYS, Ptable, PtableParameters, cached_ptable, ptable_file_name

DEFAULT_MIN_CELL = 10
DEFAULT_ROUND_TO = 10

#: A cell as a site reports it: its true count and its cell key (None when the site gave no key: such a count is
#: never released under a perturbing rule).
Cell = tuple[int, int | None]

#: What a count reads when it cannot be released because its site gave no cell key (a result stored before the
#: sites computed cell keys): never the number.
NOT_RELEASED = "not released (count again)"


@dataclass(frozen=True)
class PrivacyRule:
    """How one site's counts are released to one reader.

    ``ptable``: the site's perturbation table; every count is perturbed by it (the cell-key method,
    ``disclosure.cellkey``). It is None only for counts exact by a steward's grant (``grant``: its id) and for
    unit tests of the other parts of the rule; ``disclosure.selectors.rule_for`` never leaves it out otherwise.
    """

    min_cell: int = DEFAULT_MIN_CELL
    round_to: int = 1  # 1 = no rounding
    ptable: Ptable | None = None
    grant: int | None = None

    @property
    def perturbs(self) -> bool:
        return self.ptable is not None

    @property
    def method(self) -> str:
        return "perturbed" if self.ptable is not None else "exact"

    def describe(self) -> str:
        """The rule in words, in the reader's language (the ``method``, ``min_cell`` and ``round_to`` fields of
        ``as_dict`` are the stable, machine-readable form)."""
        if self.ptable is not None:
            text = gettext("perturbed (at most ±%(max)s), counts under %(min)s hidden") % {
                "max": self.ptable.parameters.max_adjustment,
                "min": self.min_cell,
            }
        elif self.grant is not None:
            text = gettext("exact by grant #%(grant)s, counts under %(min)s hidden") % {
                "grant": self.grant,
                "min": self.min_cell,
            }
        else:
            text = gettext("counts under %(min)s hidden") % {"min": self.min_cell}
        if self.round_to > 1:
            text += gettext(", rounded to the nearest %(n)s") % {"n": self.round_to}
        return text

    def short(self) -> str:
        """The rule in a few characters, for a column beside every number of a long table."""
        if self.ptable is not None:
            text = gettext("±%(max)s, <%(min)s hidden") % {
                "max": self.ptable.parameters.max_adjustment,
                "min": self.min_cell,
            }
        elif self.grant is not None:
            text = gettext("exact (grant #%(grant)s), <%(min)s hidden") % {"grant": self.grant, "min": self.min_cell}
        else:
            text = gettext("<%(min)s hidden") % {"min": self.min_cell}
        if self.round_to > 1:
            text += gettext(", rounded to %(n)s") % {"n": self.round_to}
        return text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "min_cell": self.min_cell,
            "round_to": self.round_to,
            "method": self.method,
            "grant": self.grant,
            "description": self.describe(),
            "short": self.short(),
        }
        if self.ptable is not None:
            parameters = self.ptable.parameters
            out["perturbation"] = {
                "ptable": ptable_file_name(parameters),
                "max_adjustment": parameters.max_adjustment,
                "variance": str(parameters.variance),
            }
        return out


@dataclass(frozen=True)
class ProtectedCount:
    value: int | None  # None when hidden
    display: str
    hidden: bool

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "display": self.display, "hidden": self.hidden}


def strictest(rules: Iterable[PrivacyRule]) -> PrivacyRule:
    """The rule of a number made of several sites' counts: the largest threshold and rounding; perturbed unless
    every part is exact by grant, with the largest noise of the parts (``max_adjustment``, then ``variance``)."""
    rules = list(rules)
    if not rules:
        return PrivacyRule()
    min_cell = max(r.min_cell for r in rules)
    round_to = max(r.round_to for r in rules)
    perturbing = [r.ptable.parameters for r in rules if r.ptable is not None]
    if not perturbing:
        grants = {r.grant for r in rules}
        return PrivacyRule(min_cell=min_cell, round_to=round_to, grant=grants.pop() if len(grants) == 1 else None)
    parameters = PtableParameters(
        max_adjustment=max(p.max_adjustment for p in perturbing),
        variance=max(p.variance for p in perturbing),
        threshold=min_cell,
    )
    return PrivacyRule(min_cell=min_cell, round_to=round_to, ptable=cached_ptable(parameters))


def cell_sum(cells: Iterable[Cell]) -> Cell:
    """The cell of several disjoint cells (sites, or buckets summed into one): counts add, and so do cell keys
    (modulo 256), as the cell key of a set of persons is the sum of their record keys. No key if a part has
    none."""
    count, key, keyed = 0, 0, True
    for n, k in cells:
        count += int(n)
        if k is None:
            keyed = False
        else:
            key += int(k)
    return count, (key % KEYS if keyed else None)


def protect(count: int, rule: PrivacyRule, key: int | None = None) -> ProtectedCount:
    """A count as it may be released under ``rule``: 0 stays 0; a true count under the threshold is hidden;
    any other is perturbed with its cell key (``key``) when the rule perturbs — a count without a key is then
    not released at all — and rounded on top for aggregate-only roles."""
    if count <= 0:
        return ProtectedCount(0, "0", False)
    if count < rule.min_cell:
        return ProtectedCount(None, f"<{rule.min_cell}", True)
    value = count
    if rule.ptable is not None:
        if key is None:
            return ProtectedCount(None, NOT_RELEASED, True)
        perturbed = perturb(count, int(key), rule.ptable)
        if perturbed is None:  # a ptable with a higher threshold than the rule's
            return ProtectedCount(None, f"<{rule.min_cell}", True)
        value = perturbed
    if rule.round_to > 1:
        # Half up, and never below the threshold (rounding 12 down to 10 is fine, 10 stays 10).
        value = max(rule.min_cell, ((value + rule.round_to // 2) // rule.round_to) * rule.round_to)
    return ProtectedCount(value, f"{value:,}", False)


def protect_cell(cell: Cell, rule: PrivacyRule) -> ProtectedCount:
    """``protect`` of a site's cell (its true count and cell key)."""
    return protect(cell[0], rule, cell[1])


def shown(count: int, rule: PrivacyRule, key: int | None = None) -> int | str:
    """A count as a bare value (the concept counts' format): the number when it may be shown, else its display
    ("<10")."""
    protected = protect(count, rule, key)
    return protected.display if protected.hidden else int(protected.value or 0)


def hidden(rule: PrivacyRule) -> ProtectedCount:
    return ProtectedCount(None, f"<{rule.min_cell}" if rule.min_cell > 1 else "hidden", True)


def protect_group(
    total: Cell | None, cells: Sequence[Cell], rule: PrivacyRule
) -> tuple[ProtectedCount | None, list[ProtectedCount]]:
    """Protect cells that add up to ``total`` (or that partition a shown total) with complementary
    suppression. Returns the protected total (None when no total is given) and the cells in order. Each number
    shown is perturbed with its own cell key: the total is a cell of its own, never the sum of the shown cells."""
    protected = [protect_cell(cell, rule) for cell in cells]
    shown_total = protect_cell(total, rule) if total is not None else None
    total_visible = shown_total is not None and not shown_total.hidden
    hidden_idx = [i for i, p in enumerate(protected) if p.hidden]
    if total_visible and len(hidden_idx) == 1:
        # One hidden cell = total minus the others: hide the next smallest non-zero visible cell too.
        candidates = sorted(
            (n, i) for i, ((n, _), p) in enumerate(zip(cells, protected, strict=True)) if not p.hidden and n > 0
        )
        if candidates:
            _, j = candidates[0]
            protected[j] = hidden(rule)
        else:
            shown_total = hidden(rule)
    return shown_total, protected


def protect_breakdown(total: Cell, cells: Sequence[Cell], rule: PrivacyRule) -> list[ProtectedCount] | None:
    """The cells of a breakdown of a cohort of ``total`` persons into fixed categories, as they may be shown;
    None when the total is hidden: then no cell at all may be shown (see the module's docstring).

    Complementary suppression runs over the cells with members: a hidden empty cell protects nothing, as it may
    well be guessed empty. With a shown total of at least the threshold, one small cell always has a larger
    partner to hide with it, so the total itself stays shown.
    """
    shown_total = protect_cell(total, rule)
    if shown_total.hidden:
        return None
    if total[0] <= 0:
        return [protect(0, rule) for _ in cells]
    _, protected = protect_group(total, cells, rule)
    return [hidden(rule) if n <= 0 else cell for (n, _), cell in zip(cells, protected, strict=True)]


@dataclass(frozen=True)
class FederatedTotal:
    """The total of several sites' counts as it may be shown: released (perturbed as one cell) only when every
    site's count is shown."""

    value: int | None  # None unless every part is shown
    display: str
    hidden: bool
    lower_bound: int  # what the shown parts add up to (protected like any count)
    hidden_sites: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "display": self.display,
            "hidden": self.hidden,
            "lower_bound": self.lower_bound,
            "hidden_sites": self.hidden_sites,
        }


def protect_federated(
    cells: Sequence[Cell], rules: Sequence[PrivacyRule], parts: Sequence[ProtectedCount] | None = None
) -> tuple[FederatedTotal, list[ProtectedCount]]:
    """Protect each site's count with its own rule, and the total with the strictest rule.

    The total of the sites is one cell: its true count is the sum of the sites' counts and its cell key the sum of
    their cell keys, so it is perturbed on its own — not the sum of the perturbed parts, whose difference with the
    total would otherwise give back a site's noise.

    Why no complementary suppression between sites: the total does not include hidden sites exactly, so no
    subtraction recovers them; hiding a second site would only lose information. The visible part is protected
    like any count (perturbed as the cell of the shown sites, rounded for aggregate-only roles), so it reveals no
    more than the sites shown beside it.

    ``parts``, when given, are the sites' counts as each site already protected them (a bucket of a breakdown,
    after complementary suppression): a part hidden there stays out of the visible sum here, and is said "<10"
    like any hidden part, whatever hid it.
    """
    if parts is None:
        parts = [protect_cell(cell, rule) for cell, rule in zip(cells, rules, strict=True)]
    parts = list(parts)
    merged = strictest(rules)
    hidden_sites = sum(1 for p in parts if p.hidden)
    if not hidden_sites:
        exact = protect_cell(cell_sum(cells), merged)
        return FederatedTotal(exact.value, exact.display, exact.hidden, exact.value or 0, 0), parts
    visible_cell = cell_sum(cell for cell, part in zip(cells, parts, strict=True) if not part.hidden)
    visible = protect_cell(visible_cell, merged)
    under = f"<{merged.min_cell}" if hidden_sites == 1 else f"{hidden_sites} × <{merged.min_cell}"
    if visible_cell[0] == 0:
        display = under
    elif visible.hidden:
        # The visible sites alone add up to less than the threshold (each was shown under a milder rule).
        display = f"{under} + {visible.display}"
    else:
        display = f"{visible.display} + {under}"
    lower = visible.value or 0
    return FederatedTotal(None, display, True, lower, hidden_sites), parts
