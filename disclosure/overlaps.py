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
every cell is hidden and one is still recoverable, the union itself gives it away (two cohorts: A and B together
= A's total + B's total - the union), so the union is withheld too (``SUPPRESSED``) and no cell is released.

The check holds for exact counts (an exact-count grant); under perturbation every shown number also carries its
own cell-key noise. It guards against exact recovery, as complementary suppression does; bounds (a hidden cell
is at most some shown number) remain, as they do for any suppressed table.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from disclosure.rules import Cell, PrivacyRule, ProtectedCount, hidden, protect_breakdown, protect_cell

#: A union withheld so that no cell can be worked out from it (not because it is small): "—", never "<10", which
#: would contradict the cohorts' totals shown beside it.
SUPPRESSED = ProtectedCount(None, "—", True)


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
    site may show them under ``rule``. The cells are None when the union is hidden: under the threshold, or
    withheld because no suppression of cells alone keeps a hidden cell from being recovered (see the module)."""
    shown_union = protect_cell(union, rule)
    shown_totals = [protect_cell(total, rule) for total in totals]
    protected = protect_breakdown(union, cells, rule)
    if protected is None:
        return shown_union, shown_totals, None
    equations = overlap_equations(masks, len(totals), [not t.hidden for t in shown_totals])

    def unknown(state: list[ProtectedCount]) -> list[int]:
        return [i for i, (p, (n, _)) in enumerate(zip(state, cells, strict=True)) if p.hidden and n > 0]

    while recoverable_cells(equations, unknown(protected)):
        visible = [(n, i) for i, (p, (n, _)) in enumerate(zip(protected, cells, strict=True)) if not p.hidden and n > 0]
        if not visible:
            # Hiding every cell is not enough: the union with the cohorts' totals still gives one (two cohorts:
            # A and B together = A + B - union). The union is withheld too, and with it every cell.
            return SUPPRESSED, shown_totals, None
        best: tuple[int, int, int] | None = None
        for n, i in sorted(visible):
            trial = [*protected]
            trial[i] = hidden(rule)
            left = len(recoverable_cells(equations, unknown(trial)))
            if best is None or (left, n) < (best[0], best[1]):
                best = (left, n, i)
        assert best is not None
        protected[best[2]] = hidden(rule)
    return shown_union, shown_totals, protected
