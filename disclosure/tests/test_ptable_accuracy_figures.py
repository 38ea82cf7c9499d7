"""The accuracy the default ptable costs, exactly over the 256 cell keys: the figures docs/privacy.md quotes."""

from __future__ import annotations

from fractions import Fraction

from disclosure.ptable import (
    DEFAULT_MAX_ADJUSTMENT,
    DEFAULT_THRESHOLD,
    DEFAULT_VARIANCE,
    PtableParameters,
    difference_exact_probability,
    generate_ptable,
    row_statistics,
    worst_difference_exact,
)

PTABLE = generate_ptable(PtableParameters(DEFAULT_MAX_ADJUSTMENT, DEFAULT_VARIANCE, DEFAULT_THRESHOLD))


def test_a_large_count_is_exact_about_one_time_in_four_and_off_by_1_1_on_average() -> None:
    large = row_statistics(PTABLE.rows[13])
    assert large.exact == Fraction(68, 256)  # 26.6 %
    assert large.mean_absolute_error == Fraction(284, 256)  # 1.11
    assert PTABLE.rows[13].count(3) == PTABLE.rows[13].count(-3) == 9  # ±3: 7.0 % in all
    assert sum(abs(a) <= 1 for a in PTABLE.rows[13]) == 178  # within ±1: 69.5 %


def test_near_the_threshold_the_error_is_smaller_and_still_unbiased() -> None:
    assert row_statistics(PTABLE.rows[10]).exact == 1
    eleven, twelve = row_statistics(PTABLE.rows[11]), row_statistics(PTABLE.rows[12])
    assert (eleven.exact, eleven.mean_absolute_error, eleven.variance) == (
        Fraction(66, 256),
        Fraction(236, 256),
        Fraction(11, 8),
    )
    assert (twelve.exact, twelve.mean_absolute_error) == (Fraction(64, 256), Fraction(290, 256))


def test_the_difference_of_two_large_counts_is_exact_about_one_time_in_five() -> None:
    assert row_statistics(PTABLE.rows[13]).difference_exact == Fraction(12636, 65536)  # 19.3 %


def test_no_two_released_counts_differ_exactly_more_than_one_time_in_three() -> None:
    worst, a, b = worst_difference_exact(PTABLE)
    assert (a, b) == (11, 11)
    assert worst == Fraction(20352, 65536)  # 31.1 %
    assert worst <= Fraction(1, 3)
    # Next to a count of exactly 10 (released as 10), the other count's own chance of being exact decides.
    assert difference_exact_probability(PTABLE.rows[10], PTABLE.rows[13]) == Fraction(68, 256)
