"""The default ptable, and every ptable the generator makes: unbiased, bounded, never a count from 1 to k-1,
never negative, 0 stays 0, variance as stated — exactly, over the 256 cell keys."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from disclosure.ptable import (
    DEFAULT_MAX_ADJUSTMENT,
    DEFAULT_THRESHOLD,
    DEFAULT_VARIANCE,
    KEY_ORDER,
    KEYS,
    Ptable,
    PtableParameters,
    generate_ptable,
    load_ptable,
    ptable_file_name,
    row_statistics,
)

DEFAULTS = PtableParameters(DEFAULT_MAX_ADJUSTMENT, DEFAULT_VARIANCE, DEFAULT_THRESHOLD)
DEFAULT_FILE = Path(__file__).resolve().parent.parent / "ptables" / ptable_file_name(DEFAULTS)

PARAMETER_SETS = [
    DEFAULTS,
    PtableParameters(5, Fraction(3), 10),
    PtableParameters(4, Fraction(2), 10),
    PtableParameters(2, Fraction(1, 2), 5),
    PtableParameters(2, Fraction(2), 11),
    PtableParameters(1, Fraction(1, 2), 3),
    PtableParameters(6, Fraction(9, 2), 20),
]


def assert_safe(ptable: Ptable) -> None:
    p = ptable.parameters
    assert set(ptable.rows) == {0, *range(p.threshold, p.open_from + 1)}
    assert ptable.rows[0] == (0,) * KEYS, "a true 0 stays 0"
    for value, row in ptable.rows.items():
        assert len(row) == KEYS
        assert sum(row) == 0, f"row {value} is biased"
        assert all(abs(a) <= p.max_adjustment for a in row), f"row {value} exceeds the maximum adjustment"
        for a in row:
            released = value + a
            assert released >= 0
            assert not 0 < released < p.threshold, f"{value}{a:+d} lands under the threshold"
        # Format 2: the row's adjustments, in increasing order, lie over the keys in the fixed shuffled order.
        assert tuple(row[key] for key in KEY_ORDER) == tuple(sorted(row)), "adjustments follow KEY_ORDER"
    # Every true count above the open row's start uses its row: the same noise for every large count.
    assert ptable.adjustments(p.open_from + 1000) == ptable.rows[p.open_from]
    for small in range(1, p.threshold):
        assert ptable.adjustments(small) is None, "counts 1..k-1 are withheld"


@pytest.mark.parametrize("parameters", PARAMETER_SETS, ids=lambda p: p.describe())
def test_every_generated_ptable_is_unbiased_bounded_and_never_under_the_threshold(parameters) -> None:
    ptable = generate_ptable(parameters)
    assert_safe(ptable)
    # The variance is V wherever the noise has its full range, and never more than V anywhere.
    for value, row in ptable.rows.items():
        variance = row_statistics(row).variance
        assert variance <= parameters.variance, value
    assert row_statistics(ptable.rows[parameters.open_from]).variance == parameters.variance
    # A true k can only be released unbiased and at least k by not moving it.
    assert ptable.rows[parameters.threshold] == (0,) * KEYS


def test_the_default_ptable_has_the_stated_moments_exactly() -> None:
    ptable = generate_ptable(DEFAULTS)
    assert (DEFAULTS.max_adjustment, DEFAULTS.variance, DEFAULTS.threshold) == (3, 2, 10)
    stats = {value: row_statistics(row) for value, row in ptable.rows.items()}
    assert all(s.mean == 0 for s in stats.values())
    # 10 is released as 10; 11 can only go down by 1, which caps its variance at 11/8 (the maximum-entropy noise
    # with mean 0 alone on -1..3; more would need b > 0, a convex log-probability); from 12 on it is 2.
    assert [stats[v].variance for v in (0, 10, 11, 12, 13)] == [0, 0, Fraction(11, 8), 2, 2]
    assert all(-3 <= a <= 3 for row in ptable.rows.values() for a in row)


def test_the_committed_default_ptable_is_the_generated_one_and_loads() -> None:
    generated = generate_ptable(DEFAULTS)
    assert DEFAULT_FILE.read_text(encoding="utf-8") == generated.to_csv()
    loaded = load_ptable(DEFAULT_FILE)
    assert loaded == generated
    assert_safe(loaded)


def test_generation_is_deterministic() -> None:
    assert generate_ptable(DEFAULTS).to_csv() == generate_ptable(DEFAULTS).to_csv()


def test_the_key_order_is_a_fixed_permutation_that_breaks_the_sum_structure_of_keys() -> None:
    assert sorted(KEY_ORDER) == list(range(256))
    # Not a linear map of the keys (a linear one keeps "the key of a sum is the sum of the keys" aligned with the
    # order of the adjustments): some pair of keys and their sum are out of any affine pattern.
    position = {key: i for i, key in enumerate(KEY_ORDER)}
    assert any(
        (position[(a + b) % 256] - position[a] - position[b] + position[0]) % 256 for a in range(8) for b in range(8)
    )
