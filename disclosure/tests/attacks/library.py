"""The arithmetic of an attack: what the attacker estimates, how often that is the truth, and how often the ptable
lets it be by chance.

Every attack of the suite reduces to the same shape. The attacker adds and subtracts released numbers (``Term``:
a released cell, with the sign it takes) to estimate a small group's true size (``Instance.target``). Each
released number is the cell's true count plus the ptable's adjustment of its cell key, so the estimate is exact
exactly when the signed adjustments cancel. The cells' true counts fix which ptable rows apply; their keys are
what the attacker cannot know. Modelled as independent uniform keys — one per distinct set of persons, so that a
cell released twice (the same persons asked for twice) carries the same adjustment, and a margin made of exactly
the cells it is compared with has their keys' sum (``Instance.keys_add_up``) — this gives:

- ``chance``: the probability that an instance's estimate is exact, computed from the ptable's rows;
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
    #: The first term's persons are exactly those of the others together (a margin whose hidden cells are all
    #: empty): its cell key is then the sum of theirs, not a key of its own (see ``chance``).
    keys_add_up: bool = False

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
def _noise(parameters: PtableParameters, count: int) -> np.ndarray:
    """The adjustment of a cell of ``count`` persons over uniform cell keys, as probabilities of -D..D (the ptable
    of ``parameters``, as every site with them has it)."""
    d = parameters.max_adjustment
    probabilities = np.zeros(2 * d + 1)
    for adjustment in cached_ptable(parameters).adjustments(count) or (0,) * KEYS:
        probabilities[adjustment + d] += 1 / KEYS
    return probabilities


def chance(instance: Instance, ptable: Ptable) -> float:
    """The probability, over independent uniform cell keys, that the instance's signed adjustments cancel."""
    if instance.keys_add_up:
        return _chance_of_a_sum(instance, ptable)
    d = ptable.parameters.max_adjustment
    total, low = np.ones(1), 0  # the distribution of the signed sum so far, from ``low`` up
    for (_, count, _), coefficient in instance.coefficients().items():
        noise = _noise(ptable.parameters, count)
        if coefficient < 0:
            noise = noise[::-1]
        spread = np.zeros(abs(coefficient) * 2 * d + 1)
        spread[:: abs(coefficient)] = noise
        total, low = np.convolve(total, spread), low - abs(coefficient) * d
    return float(total[-low]) if 0 <= -low < len(total) else 0.0


def _chance_of_a_sum(instance: Instance, ptable: Ptable) -> float:
    """``chance`` of a margin that holds exactly the persons of the cells subtracted from it: their keys are
    independent, the margin's is their sum modulo 256. Far from independent: the ptable lays its adjustments out
    over consecutive key ranges, so a key sum that wraps round 256 drags the margin's adjustment with it (two
    large cells: never exact; three: 39 %, against 13 % for independent keys).

    The joint distribution of (key sum, adjustment sum) of the cells, cell by cell; then the margin's row."""
    margin, *cells = instance.terms
    assert margin.sign == 1 and all(term.sign == -1 for term in cells)
    d = ptable.parameters.max_adjustment
    offset = d * len(cells)
    joint = np.zeros((KEYS, 2 * offset + 1))  # [key sum, adjustment sum + offset]
    joint[0, offset] = 1.0
    for term in cells:
        row = np.asarray(ptable.adjustments(term.count) or (0,) * KEYS)
        spectrum = np.fft.fft(joint, axis=0)
        following = np.zeros_like(joint)
        for adjustment in np.unique(row):
            keys = (row == adjustment) / KEYS
            shifted = np.real(np.fft.ifft(spectrum * np.fft.fft(keys)[:, None], axis=0))  # key sums, cyclic
            following += np.roll(shifted, int(adjustment), axis=1)  # never wraps: |sum| <= offset
        joint = following
    margin_row = np.asarray(ptable.adjustments(margin.count) or (0,) * KEYS)
    return float(np.clip(joint[np.arange(KEYS), margin_row + offset].sum(), 0.0, 1.0))


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
    for j, instance in enumerate(instances):
        if instance.keys_add_up:
            # The margin's key is the sum of its cells' keys in every draw, not a draw of its own.
            margin, *parts = instance.terms
            columns = [index[term.cell] for term in parts]
            margin_row = np.asarray(ptable.adjustments(margin.count) or (0,) * KEYS, dtype=float)
            errors[:, j] = margin_row[keys[:, columns].sum(axis=1) % KEYS] - noise[:, columns].sum(axis=1)
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
    _expected: float | None = field(default=None, init=False, repr=False)

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
        if self._expected is None:
            chances = [chance(instance, self.ptable) for instance in self.instances]
            self._expected = sum(chances) / len(chances) if chances else 0.0
        return self._expected

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
