"""Every valid parameter set in the range a site would choose generates a ptable, and each one has the exact
properties: unbiased, bounded by D, never a count from 1 to k-1, never negative, variance V on the open row and
never more than V — over a grid of D 1..10, V multiples of 1/128 up to the uniform bound, k 1..50.

The noise of a row depends on D, V and how far the count is above k, not on k itself, so the grid varies k along
with D and V instead of multiplying the tables."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from disclosure.ptable import KEYS, PtableParameters, generate_ptable, parse_ptable, row_statistics
from disclosure.tests.test_ptable_default_is_unbiased_bounded_and_thresholded import assert_safe

STEP = Fraction(1, 128)
THRESHOLDS = itertools.cycle((1, 2, 10, 50, 3, 20, 11, 5))


def _variances(d: int) -> list[Fraction]:
    """The smallest variance, the largest the uniform bound allows, and points between them that are not round
    numbers (odd multiples of 1/128 fall between the values people pick, where the solver has no easy start)."""
    top = Fraction(int(Fraction(d * (d + 1), 3) / STEP), 128)
    between = [Fraction(round(top * Fraction(share, 11) / STEP) | 1, 128) for share in range(1, 11)]
    return sorted({STEP, *between, top - STEP, top})


GRID = [PtableParameters(d, v, next(THRESHOLDS)) for d in range(1, 11) for v in _variances(d)]
# Sets the generator once failed on (the maximum-entropy solver stalled short of its tolerance).
ONCE_FAILED = [
    PtableParameters(5, Fraction(3), 10),
    PtableParameters(1, Fraction(3, 128), 10),
    PtableParameters(2, Fraction(1, 64), 10),
    PtableParameters(3, Fraction(21, 64), 10),
]


@pytest.mark.parametrize("parameters", GRID + ONCE_FAILED, ids=lambda p: p.describe())
def test_the_ptable_of_every_parameter_set_is_exact(parameters: PtableParameters) -> None:
    ptable = generate_ptable(parameters)
    assert_safe(ptable)
    for value, row in ptable.rows.items():
        assert row_statistics(row).mean == 0, value
        assert row_statistics(row).variance <= parameters.variance, value
    assert row_statistics(ptable.rows[parameters.open_from]).variance == parameters.variance
    assert ptable.rows[parameters.threshold] == (0,) * KEYS
    assert parse_ptable(ptable.to_csv()) == ptable, "what is generated loads back unchanged"


def test_the_grid_covers_the_range() -> None:
    assert {p.max_adjustment for p in GRID} == set(range(1, 11))
    assert {p.threshold for p in GRID} >= {1, 50}
    assert Fraction(110, 3) - STEP < max(p.variance for p in GRID) <= Fraction(110, 3)
    for p in GRID:
        p.validate()
