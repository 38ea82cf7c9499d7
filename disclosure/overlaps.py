"""Disclosure control of a cohort comparison: the persons in each combination of two to four cohorts.

The combinations (A only, B only, A and B, ...) partition the union of the cohorts, so they are a breakdown of
the union's total (``disclosure.rules.protect_breakdown``: no cell without a shown union, fixed categories, empty
ones shown like hidden ones, complementary suppression). A breakdown's suppression guards only against its one
total, and a comparison has more: each cohort's own total is released too (beside the chart, and on each
definition's count page, where it is the same persons with the same cell key, hence the same number). Cohort A's
total is the sum of the combinations with A in them, and the union minus A's total the sum of those without A:
with one of them hidden and the others shown, subtraction gives it back (up to the noise of perturbation, and
exactly under an exact-count grant).

So, after the breakdown's suppression, ``protect_overlap`` checks the hidden cells against every shown total at
once, as linear algebra: a hidden cell is recoverable when some combination of the shown totals' equations,
after the shown cells are moved to the known side, leaves that cell alone (its unit vector lies in the row space
of the equations restricted to the hidden cells). While one is, the smallest shown cell that helps is hidden too
(the cell that makes the fewest cells recoverable, then the smallest). Hidden empty cells count as known (an
attacker may guess them empty; see ``protect_breakdown``), so only cells with members protect one another. If
nothing is left to hide and a cell is still recoverable, no cell is released.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from disclosure.rules import Cell, PrivacyRule, ProtectedCount, hidden, protect_breakdown, protect_cell


def overlap_equations(masks: Sequence[int], cohorts: int, shown_totals: Sequence[bool]) -> list[list[int]]:
    """The equations an attacker holds over the combination cells (one row per shown total, one column per mask):
    the union (every cell), each shown cohort total (the cells with its bit)."""
    rows = [[1] * len(masks)]
    for position in range(cohorts):
        if shown_totals[position]:
            rows.append([1 if mask & (1 << position) else 0 for mask in masks])
    return rows


def _rank(rows: list[list[Fraction]]) -> int:
    matrix = [list(row) for row in rows]
    rank, columns = 0, len(matrix[0]) if matrix else 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][column] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        for r in range(len(matrix)):
            if r != rank and matrix[r][column] != 0:
                factor = matrix[r][column] / matrix[rank][column]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[rank], strict=True)]
        rank += 1
    return rank


def recoverable_cells(equations: list[list[int]], unknown: Sequence[int]) -> list[int]:
    """The columns of ``unknown`` whose value the equations determine once every other column is known."""
    if not unknown:
        return []
    restricted = [[Fraction(row[c]) for c in unknown] for row in equations]
    base = _rank(restricted)
    found = []
    for i, column in enumerate(unknown):
        unit = [Fraction(1 if j == i else 0) for j in range(len(unknown))]
        if _rank([*restricted, unit]) == base:
            found.append(column)
    return found


def protect_overlap(
    union: Cell, cells: Sequence[Cell], masks: Sequence[int], totals: Sequence[Cell], rule: PrivacyRule
) -> tuple[ProtectedCount, list[ProtectedCount], list[ProtectedCount] | None]:
    """The union, each cohort's total and each combination cell (``cells``, one per mask in ``masks``) as one
    site may show them under ``rule``. The cells are None when the union is hidden or when no suppression can
    keep a hidden cell from being recovered (see the module)."""
    shown_union = protect_cell(union, rule)
    shown_totals = [protect_cell(total, rule) for total in totals]
    protected = protect_breakdown(union, cells, rule)
    if protected is None:
        return shown_union, shown_totals, None
    equations = overlap_equations(masks, len(totals), [not t.hidden for t in shown_totals])

    def unknown(state: list[ProtectedCount]) -> list[int]:
        return [i for i, (p, (n, _)) in enumerate(zip(state, cells, strict=True)) if p.hidden and n > 0]

    while recoverable_cells(equations, unknown(protected)):
        visible = sorted((n, i) for i, (p, (n, _)) in enumerate(zip(protected, cells, strict=True)) if not p.hidden)
        visible = [(n, i) for n, i in visible if n > 0]
        if not visible:
            return shown_union, shown_totals, None
        best: tuple[int, int, int] | None = None
        for n, i in visible:
            trial = [*protected]
            trial[i] = hidden(rule)
            left = len(recoverable_cells(equations, unknown(trial)))
            if best is None or (left, n) < (best[0], best[1]):
                best = (left, n, i)
        assert best is not None
        protected[best[2]] = hidden(rule)
    return shown_union, shown_totals, protected
