"""Over many random cohorts, the difference of two perturbed counts equals the true difference no more often than
the ptable says (about 1 time in 5 for large counts, never more than 1 in 3), and averaging gains nothing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from disclosure.cellkey import cell_key, perturb, record_key
from disclosure.ptable import PtableParameters, generate_ptable, row_statistics

PTABLE = generate_ptable(PtableParameters(3, 2, 10))
SECRET = b"site secret of hospital A"
KEYS = np.array([0] + [record_key(SECRET, person) for person in range(1, 20_001)])  # KEYS[person id]


def released(cohort: np.ndarray) -> int | None:
    return perturb(len(cohort), cell_key(KEYS[cohort].tolist()), PTABLE)


def test_differences_between_a_cohort_and_the_cohort_minus_a_few_persons_are_rarely_exact() -> None:
    """The subtraction attack: A and A minus 1 to 9 persons, both large; how often does released(A) -
    released(A minus them) give the number removed?"""
    rng = np.random.default_rng(15)
    persons = np.arange(1, 20_001)
    trials, exact = 20_000, 0
    for _ in range(trials):
        cohort = rng.choice(persons, size=int(rng.integers(30, 3000)), replace=False)
        removed = int(rng.integers(1, 10))
        smaller = cohort[removed:]
        a = released(cohort)
        b = released(smaller)
        assert a is not None and b is not None
        exact += a - b == removed
    expected = float(row_statistics(PTABLE.rows[13]).difference_exact)  # 0.193
    rate = exact / trials
    # Binomial standard error at 20,000 trials is 0.0028: five of them either way.
    assert abs(rate - expected) < 0.014, (rate, expected)
    assert rate < 1 / 3


def test_near_the_threshold_the_difference_is_exact_at_most_one_time_in_three() -> None:
    rng = np.random.default_rng(16)
    persons = np.arange(1, 20_001)
    trials, exact = 20_000, 0
    for _ in range(trials):
        cohort = rng.choice(persons, size=int(rng.integers(11, 14)), replace=False)
        other = rng.choice(persons, size=int(rng.integers(11, 14)), replace=False)
        a = released(cohort)
        b = released(other)
        assert a is not None and b is not None
        exact += a - b == len(cohort) - len(other)
    assert exact / trials < Fraction(1, 3)


def test_averaging_repeated_queries_gains_nothing() -> None:
    cohort = np.arange(100, 400)
    answers = {released(cohort) for _ in range(50)}
    assert len(answers) == 1


def test_the_noise_over_many_cohorts_is_unbiased_and_has_the_stated_variance() -> None:
    rng = np.random.default_rng(17)
    persons = np.arange(1, 20_001)
    errors = []
    for _ in range(6000):
        cohort = rng.choice(persons, size=int(rng.integers(13, 2000)), replace=False)
        value = released(cohort)
        assert value is not None
        errors.append(value - len(cohort))
    errors_array = np.asarray(errors, dtype=float)
    assert abs(errors_array.mean()) < 0.06  # standard error 0.018
    assert abs(errors_array.var() - 2) < 0.15
    assert errors_array.min() >= -3 and errors_array.max() <= 3
