"""The arithmetic of an attack: what the attacker estimates, how often that is the truth, and how often the ptable
lets it be by chance.

Every attack of the suite reduces to the same shape. The attacker adds and subtracts released numbers (``Term``:
a released cell, with the sign it takes) to estimate a small group's true size (``Instance.target``). Each
released number is the cell's true count plus the ptable's adjustment of its cell key, so the estimate is exact
exactly when the signed adjustments cancel. The cells' true counts fix which ptable rows apply; their keys are
what the attacker cannot know. Modelled as independent uniform keys — one per distinct set of persons, so that a
cell released twice (the same persons asked for twice) carries the same adjustment — this gives:

- ``Instance.chance``: the probability that the estimate is exact, computed exactly from the ptable rows;
- ``Outcome.expected``: the mean chance over the instances — the rate an attack achieves by luck alone;
- ``Outcome.spread``: the standard deviation of the rate over fresh draws of every key, simulated, because
  instances that share a cell (per-rule counts against one total) are not independent trials;
- ``Outcome.bound``: expected + 3 × spread. An attack that recovers more than this does better than the ptable
  allows (about 1 time in 740 by chance, one-sided): the keys are not doing their job.

Where one set of persons shows up in two cells, the cells are one: a ``Term`` is identified by its site, true
count and cell key, exactly what fixes its adjustment.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

import numpy as np

from disclosure.ptable import KEYS, Ptable, PtableParameters, cached_ptable

#: The binomial margin of every bound: three standard deviations above the chance level.
SIGMAS = 3
#: Fresh key draws simulated to measure the spread of an attack's rate.
DRAWS = 2000


@dataclass(frozen=True)
class Term:
    """One released number in the attacker's sum: ``sign`` × the number released for the cell of ``count``
    persons with cell key ``key`` at ``site`` (the site's true values, known to the test only)."""

    sign: int
    site: str
    count: int
    key: int

    @property
    def cell(self) -> tuple[str, int, int]:
        return self.site, self.count, self.key


@dataclass(frozen=True)
class Instance:
    """One try: the true size of the group (from the engine), the attacker's estimate (None when a number it
    needed was withheld), and the released cells it used."""

    target: int
    estimate: int | None
    terms: tuple[Term, ...]

    @property
    def recovered(self) -> bool:
        return self.estimate is not None and self.estimate == self.target

    def coefficients(self) -> dict[tuple[str, int, int], int]:
        """The net sign of each distinct cell (a cell added and subtracted cancels: its noise too)."""
        out: dict[tuple[str, int, int], int] = defaultdict(int)
        for term in self.terms:
            out[term.cell] += term.sign
        return {cell: c for cell, c in out.items() if c}


def estimate(values: Sequence[int | None], signs: Sequence[int]) -> int | None:
    """The attacker's estimate: the signed sum of released values; None when one of them was withheld."""
    total = 0
    for value, sign in zip(values, signs, strict=True):
        if value is None:
            return None
        total += int(value) * sign
    return total


@cache
def _noise(parameters: PtableParameters, count: int) -> tuple[tuple[int, Fraction], ...]:
    """The adjustment of a cell of ``count`` persons, as a distribution over uniform cell keys (the ptable of
    ``parameters``, as every site with them has it)."""
    row = cached_ptable(parameters).adjustments(count)
    if row is None:
        return ((0, Fraction(1)),)
    frequencies: dict[int, int] = defaultdict(int)
    for adjustment in row:
        frequencies[adjustment] += 1
    return tuple((a, Fraction(n, KEYS)) for a, n in sorted(frequencies.items()))


def chance(instance: Instance, ptable: Ptable) -> Fraction:
    """The probability, over independent uniform cell keys, that the instance's signed adjustments cancel."""
    total: dict[int, Fraction] = {0: Fraction(1)}
    for (_, count, _), coefficient in instance.coefficients().items():
        step: dict[int, Fraction] = defaultdict(Fraction)
        for value, p in total.items():
            for adjustment, q in _noise(ptable.parameters, count):
                step[value + coefficient * adjustment] += p * q
        total = step
    return total.get(0, Fraction(0))


def _simulated_spread(instances: Sequence[Instance], ptable: Ptable, seed: int) -> float:
    """The standard deviation of the rate of exact estimates over ``DRAWS`` fresh draws of every cell's key."""
    cells = sorted({cell for instance in instances for cell in instance.coefficients()})
    if not cells:
        return 0.0
    index = {cell: i for i, cell in enumerate(cells)}
    weights = np.zeros((len(cells), len(instances)))
    for j, instance in enumerate(instances):
        for cell, coefficient in instance.coefficients().items():
            weights[index[cell], j] = coefficient
    rows = np.array([ptable.adjustments(count) or (0,) * KEYS for _, count, _ in cells], dtype=float)
    keys = np.random.default_rng(seed).integers(0, KEYS, size=(DRAWS, len(cells)))
    noise = rows[np.arange(len(cells))[None, :], keys]  # noise[draw, cell]
    errors = noise @ weights
    rates = (np.abs(errors) < 0.5).mean(axis=1)
    return float(rates.std())


@dataclass
class Outcome:
    """An attack over many instances: how often it recovered the truth, against what chance allows."""

    attack: str
    instances: list[Instance]
    ptable: Ptable
    seed: int = 15
    _spread: float | None = field(default=None, init=False, repr=False)

    @property
    def tried(self) -> int:
        return len(self.instances)

    @property
    def recovered(self) -> int:
        return sum(1 for instance in self.instances if instance.recovered)

    @property
    def rate(self) -> float:
        return self.recovered / self.tried if self.tried else 0.0

    @property
    def expected(self) -> float:
        return float(sum(chance(i, self.ptable) for i in self.instances) / self.tried) if self.tried else 0.0

    @property
    def spread(self) -> float:
        if self._spread is None:
            self._spread = _simulated_spread(self.instances, self.ptable, self.seed)
        return self._spread

    @property
    def bound(self) -> float:
        return self.expected + SIGMAS * self.spread

    def summary(self) -> str:
        independent = math.sqrt(self.expected * (1 - self.expected) / self.tried) if self.tried else 0.0
        return (
            f"{self.attack}: {self.recovered}/{self.tried} recovered exactly = {self.rate:.3f}; "
            f"chance {self.expected:.3f}, spread {self.spread:.3f} (independent trials: {independent:.3f}), "
            f"bound {self.bound:.3f}"
        )


def assert_at_chance(outcome: Outcome, *, at_least: int) -> None:
    """The attack had ``at_least`` instances, and recovered no more of them than chance allows."""
    print(outcome.summary())  # the figures docs/privacy.md quotes (pytest -s)
    assert outcome.tried >= at_least, outcome.summary()
    assert outcome.rate <= outcome.bound, outcome.summary()


def assert_attack_works(outcome: Outcome, *, at_least: int) -> None:
    """Without perturbation (counts exact by grant) the same attack recovers every small group: the attack is
    real, and only the perturbation stops it."""
    print(outcome.summary())
    assert outcome.tried >= at_least, outcome.summary()
    assert outcome.recovered == outcome.tried, outcome.summary()


def targets(instances: Iterable[Instance]) -> list[int]:
    return [instance.target for instance in instances]
