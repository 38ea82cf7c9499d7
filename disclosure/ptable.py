"""Perturbation tables (ptables) of the cell-key method: how a cell's true count and cell key give its noise.

A ptable says, for each true cell value and each cell key 0..255, the adjustment added to the count before it is
released. It is data, versioned, generated from documented parameters (``make_ptable``) and validated on load:

- ``max_adjustment`` D: no adjustment is larger than D either way (the noise is bounded);
- ``variance`` V: the variance of the adjustment over the 256 cell keys (exactly, for every row where V fits;
  see "near the threshold" below);
- ``threshold`` k: counts from 1 to k-1 are withheld, never released as a number. The threshold applies to the
  true count: a table has no row for them, and every row it has releases either 0 (true 0 only) or at least k.

Rows, by true count ``n``:
- ``n = 0``: adjustment 0 on every key. An empty cell stays empty (a true 0 has no records, hence no cell key).
- ``1 <= n < k``: no row; ``perturb`` withholds the count. Here "unbiased" and "never 1..k-1" cannot both hold
  with bounded noise (a true 3 could only go to 0, or up by at least 7 > D), so the count is not released at all
  rather than released with a bias: this is the rule the portal already applies to small counts.
- ``n >= k``: the adjustment has mean exactly 0 over the 256 keys (unbiased), is within -D..D, and never takes the
  count below k. Just above the threshold the last condition cuts the downward side of the noise: at ``n = k``
  the only unbiased noise that never goes below k is none at all, so a true k is released as k; at ``n = k + j``
  (j < D) the adjustment is at least -j. Keeping the mean at 0 there costs variance, never bias: the row's variance
  is V unless reaching V on that lopsided range would need b > 0 below (noise more likely towards the ends of
  its range than near 0); then the row takes b = 0, the maximum-entropy noise with mean 0 alone, and its variance.
- ``n >= k + D`` share one row, written as the open range ``k+D+``: the noise is the same for every large count.

Each row's probabilities are the maximum-entropy distribution on its range with mean 0 and the row's variance
(the least informative noise with those two moments: a discretised bell, ``p(d) ∝ exp(a·d + b·d²)``, b ≤ 0),
then rounded to multiples of 1/256 so that the mean is exactly 0 and the variance exactly the row's target
(rounded to a multiple of 1/128, the step that 256 integer keys allow) — an exact statement, not an approximation.

Which key gets which adjustment (format 2): each row's adjustments, in increasing order, are laid over the keys in
one fixed pseudo-random order (``KEY_ORDER``), not over consecutive key ranges. Cell keys add up (a margin made of
cells has the sum of their keys), and with consecutive ranges the noise is a monotone step of the key, so a margin's
noise and its cells' noises were not independent: with three shown cells and empty hidden ones, "margin minus the
shown cells" came out exact 39 % of the time against 14 % for independent noise (the attack suite measured it).
Spreading the adjustments over a shuffled key order keeps every row's distribution (hence every figure of the
docs) and removes that dependence. Format 1 (consecutive ranges) is no longer read.

File format (CSV, UTF-8)::

    # soyang-ptable 2
    # max_adjustment=3 variance=2 threshold=10
    cell_value,cell_key_from,cell_key_to,perturbation
    0,0,255,0
    10,0,255,0
    11,0,0,1
    11,1,2,-1
    ...

Lines starting with ``#`` are comments; the first says the format and its version, one of them holds the
parameters as ``name=value``. ``cell_value`` is a count or, once, ``N+`` for every count from N up.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

FORMAT_NAME = "soyang-ptable"
FORMAT_VERSION = 2
KEYS = 256  # cell keys are 0..255


def _key_order() -> tuple[int, ...]:
    """A fixed permutation of the 256 cell keys: Fisher–Yates driven by SHA-256 of a constant, so that anyone can
    rebuild it (it is no secret: the published ptable lists every key's adjustment anyway)."""
    order = list(range(KEYS))
    stream = b""
    counter = 0
    for i in range(KEYS - 1, 0, -1):
        while True:
            if len(stream) < 2:
                stream += hashlib.sha256(f"soyang ptable key order {counter}".encode("ascii")).digest()
                counter += 1
            draw, stream = int.from_bytes(stream[:2], "big"), stream[2:]
            limit = 65536 - 65536 % (i + 1)  # rejection keeps the draw uniform on 0..i
            if draw < limit:
                break
        j = draw % (i + 1)
        order[i], order[j] = order[j], order[i]
    return tuple(order)


#: The key that takes the n-th smallest adjustment of a row (format 2).
KEY_ORDER = _key_order()
HEADER = ("cell_value", "cell_key_from", "cell_key_to", "perturbation")

#: The defaults: see ``docs/privacy.md`` for why (the difference of two large counts is exact about 1 time in 5,
#: never more than 1 in 3 for any two counts above the threshold; mean absolute error about 1.1).
DEFAULT_MAX_ADJUSTMENT = 3
DEFAULT_VARIANCE = Fraction(2)
DEFAULT_THRESHOLD = 10


class PtableError(ValueError):
    """A ptable that cannot be made or used: bad parameters or a broken file (the message says where)."""


@dataclass(frozen=True)
class PtableParameters:
    max_adjustment: int
    variance: Fraction
    threshold: int

    def validate(self) -> None:
        if self.max_adjustment < 1:
            raise PtableError(f"max_adjustment must be at least 1, not {self.max_adjustment}")
        if self.threshold < 1:
            raise PtableError(f"threshold must be at least 1, not {self.threshold}")
        if self.variance <= 0:
            raise PtableError(f"variance must be positive, not {self.variance}")
        if (self.variance * (KEYS // 2)).denominator != 1:
            raise PtableError(
                f"variance must be a multiple of 1/{KEYS // 2} (256 keys state it exactly): {self.variance}"
            )
        d = self.max_adjustment
        # The uniform noise on -D..D has variance D(D+1)/3; asking more would pile the noise at ±D.
        uniform = Fraction(d * (d + 1), 3)
        if self.variance > uniform:
            raise PtableError(
                f"variance {self.variance} is more than the uniform noise on -{d}..{d} has ({uniform}): "
                f"raise max_adjustment or lower the variance"
            )

    @property
    def open_from(self) -> int:
        """The first count of the open range: from here every count has the full noise range -D..D."""
        return self.threshold + self.max_adjustment

    def describe(self) -> str:
        return f"max_adjustment={self.max_adjustment} variance={self.variance} threshold={self.threshold}"


@dataclass(frozen=True)
class Ptable:
    """A validated ptable: per true count (0, k..open_from-1, and open_from for every larger count), the
    adjustment of each of the 256 cell keys."""

    parameters: PtableParameters
    rows: dict[int, tuple[int, ...]]  # cell value -> 256 adjustments, indexed by cell key

    def adjustments(self, true_count: int) -> tuple[int, ...] | None:
        """The row of a true count (None for 1..k-1: withheld, no row)."""
        if true_count < 0:
            raise PtableError(f"a count cannot be negative: {true_count}")
        if 0 < true_count < self.parameters.threshold:
            return None
        return self.rows[min(true_count, self.parameters.open_from)]

    def to_csv(self) -> str:
        return ptable_to_csv(self)


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------


def _moments(support: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    p = weights / weights.sum()
    return float(p @ support), float(p @ support**2)


def _dual(lam: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
    """The convex dual of the maximum-entropy problem: log Z(λ) - λ·target (its minimum is the solution)."""
    logits = lam @ features
    top = float(logits.max())
    return top + math.log(float(np.exp(logits - top).sum())) - float(lam @ target)


def _maxent(support: Sequence[int], variance: float | None) -> np.ndarray:
    """The maximum-entropy distribution on ``support`` (integers, including 0) with mean 0 and, when given, the
    variance; ``p(d) ∝ exp(a·d + b·d²)``. Solved by damped Newton on the convex dual (two unknowns).

    Close to the solution the dual's decrease along a Newton step (about gradient²/curvature) is smaller than a
    float can resolve in a value of order 1, so "the dual went down" cannot decide there: a step that does not
    raise the dual by more than its rounding is taken, and Newton's quadratic convergence then brings the moments
    to float precision in a step or two. (Requiring a strict decrease stalled a few steps short, e.g. on -2..5
    with variance 3.) The moments are checked, not the step: a result is returned only when they match."""
    x = np.asarray(support, dtype=float)
    features = np.vstack([x, x**2]) if variance is not None else x[None, :]
    target = np.array([0.0, variance]) if variance is not None else np.array([0.0])
    # Moments of d and d² are sums of terms up to max|d|²: their float error scales with it.
    tolerance = 1e-12 * float(np.abs(features).max())
    lam = np.zeros(features.shape[0])
    for _ in range(200):
        logits = lam @ features
        w = np.exp(logits - logits.max())
        p: np.ndarray = w / w.sum()
        mean = features @ p
        gradient = mean - target
        if float(np.max(np.abs(gradient))) <= tolerance:
            return p
        centred = features - mean[:, None]
        hessian = (centred * p) @ centred.T
        step = np.linalg.solve(hessian + 1e-12 * np.eye(len(lam)), gradient)
        objective = _dual(lam, features, target)
        allowed = objective + 1e-14 * max(1.0, abs(objective))
        t = 1.0
        while t > 1e-10 and _dual(lam - t * step, features, target) > allowed:
            t /= 2
        lam = lam - t * step
    raise PtableError(f"the maximum-entropy noise on {list(support)} with variance {variance} did not converge")


def _row_distribution(lower: int, upper: int, variance: float) -> tuple[np.ndarray, float]:
    """The noise of one row on lower..upper (lower <= 0 <= upper): its probabilities and its variance target."""
    support = list(range(lower, upper + 1))
    if lower == 0:
        return np.array([1.0 if d == 0 else 0.0 for d in support]), 0.0
    # Within p(d) ∝ exp(a·d + b·d²), b <= 0 (never more likely towards the ends), the variance is largest at
    # b = 0: the maximum-entropy noise with mean 0 alone.
    mean_only = _maxent(support, None)
    cap = float(mean_only @ np.asarray(support, dtype=float) ** 2)
    if variance >= cap:
        return mean_only, cap
    return _maxent(support, variance), variance


def _discretise(support: Sequence[int], p: np.ndarray, second_moment: int) -> list[int]:
    """Integer key counts ``n`` (summing to 256) close to ``256·p`` with ``Σ n·d = 0`` and ``Σ n·d² =
    second_moment``: the exact mean and variance.

    The three entries d = -1, 0, 1 (the pivots) follow from the three equations once the others are chosen; every
    other entry stays within a window around its ideal, the narrowest width that allows an exact rounding, and
    among those roundings the one nearest to ``256·p`` (least squares) is taken (``_nearest_rounding``)."""
    ideal = [KEYS * float(v) for v in p]
    for width in range(1, KEYS + 1):
        counts = _nearest_rounding(support, ideal, second_moment, width)
        if counts is not None:
            return counts
    raise PtableError(f"no exact 256-key rounding of the noise on {list(support)} with Σd² = {second_moment}")


def _nearest_first(values: Iterable[int], target: float) -> list[int]:
    return sorted(values, key=lambda x: (abs(x - target), x))


def _nearest_rounding(support: Sequence[int], ideal: list[float], second_moment: int, width: int) -> list[int] | None:
    """The exact rounding of ``ideal`` nearest to it with every entry but the pivots within ``width`` of its
    rounded ideal (None if there is none).

    Choosing x keys at d moves the pivots linearly (n(-1) by -x·d(d-1)/2, n(0) by -x·(1-d²), n(1) by
    -x·d(d+1)/2; whole numbers), so the search is a depth-first branch and bound over the other entries, widest
    pivot moves first, nearest value first: a branch is dropped as soon as its cost so far plus a lower bound of
    what the later entries and the pivots must still cost is no better than the best rounding found. It finds
    what trying every combination in the windows finds, without their number (7^18 at width 3 for D = 10).
    Roundings whose costs differ by float rounding alone (a symmetric row and its mirror image) are told apart
    by the counts themselves, lowest first, so the choice never depends on the last bit of a float."""
    pivots = (support.index(-1), support.index(0), support.index(1))
    free = sorted((i for i in range(len(support)) if i not in pivots), key=lambda i: (-abs(support[i]), support[i]))
    moves = [(d * (d - 1) // 2, 1 - d * d, d * (d + 1) // 2) for d in (support[i] for i in free)]
    pivot_ideal = [ideal[i] for i in pivots]
    windows: list[list[int]] = []
    for i in free:
        centre = round(ideal[i])
        lo = 0 if ideal[i] == 0 else max(0, centre - width)
        windows.append(_nearest_first(range(lo, centre + width + 1), ideal[i]))
    # From entry j on, two lower bounds of what the later entries and the pivots add. (1) Apart: the least each
    # later entry costs in its window, plus each pivot's distance to its ideal from the range the later entries
    # can still move it over. (2) Together, relaxed to real numbers without windows: with y the later entries'
    # distances to their ideals and r the pivots' distance to theirs if every later entry took its ideal, the least
    # of |y|² + |r - My|² is r·(I + MMᵀ)⁻¹·r (M: the later entries' pivot moves).
    floor_after = [0.0] * (len(free) + 1)
    reach_after: list[list[tuple[int, int]]] = [[(0, 0)] * 3 for _ in range(len(free) + 1)]
    for j in range(len(free) - 1, -1, -1):
        lo, hi = min(windows[j]), max(windows[j])
        floor_after[j] = floor_after[j + 1] + min((x - ideal[free[j]]) ** 2 for x in windows[j])
        reach_after[j] = [
            (down + min(-lo * m, -hi * m), up + max(-lo * m, -hi * m))
            for (down, up), m in zip(reach_after[j + 1], moves[j], strict=True)
        ]
    ridge_after: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(len(free) + 1):
        m = np.array(moves[j:], dtype=float).reshape(-1, 3).T
        offset = -(m @ np.array([ideal[i] for i in free[j:]], dtype=float)) - np.array(pivot_ideal)
        ridge_after.append((np.linalg.inv(np.eye(3) + m @ m.T), offset))
    best: list[tuple[float, tuple[int, ...]]] = []

    def beaten(bound: float) -> bool:
        return bool(best) and bound > best[0][0] + 1e-9

    def search(j: int, chosen: list[int], pivot: list[int], cost: float) -> None:
        apart = cost + floor_after[j]
        for v, (down, up), target in zip(pivot, reach_after[j], pivot_ideal, strict=True):
            if v + up < 0:
                return  # a pivot would need a negative number of keys
            apart += (min(max(target, v + down), v + up) - target) ** 2
        inverse, offset = ridge_after[j]
        r = np.array(pivot, dtype=float) + offset
        if beaten(apart) or beaten(cost + float(r @ inverse @ r)):
            return
        if j < len(free):
            for x in windows[j]:
                moved = [v - x * m for v, m in zip(pivot, moves[j], strict=True)]
                search(j + 1, [*chosen, x], moved, cost + (x - ideal[free[j]]) ** 2)
            return
        if min(pivot) < 0:
            return
        counts = [0] * len(support)
        for i, n in zip((*free, *pivots), (*chosen, *pivot), strict=True):
            counts[i] = n
        total = cost + sum((v - t) ** 2 for v, t in zip(pivot, pivot_ideal, strict=True))
        if not best or total < best[0][0] - 1e-9 or (total <= best[0][0] + 1e-9 and tuple(counts) < best[0][1]):
            best[:] = [(total, tuple(counts))]

    # With every other entry at 0 the pivots are n(-1) = n(1) = Σd²/2 and n(0) = 256 - Σd².
    search(0, [], [second_moment // 2, KEYS - second_moment, second_moment // 2], 0.0)
    return list(best[0][1]) if best else None


def generate_ptable(parameters: PtableParameters) -> Ptable:
    """The ptable of the parameters (deterministic: the same parameters always give the same table)."""
    parameters.validate()
    k, d = parameters.threshold, parameters.max_adjustment
    rows: dict[int, tuple[int, ...]] = {0: (0,) * KEYS}
    for value in range(k, parameters.open_from + 1):
        lower, upper = -min(d, value - k), d
        support = list(range(lower, upper + 1))
        p, row_variance = _row_distribution(lower, upper, float(parameters.variance))
        if lower == 0:
            counts = [KEYS if s == 0 else 0 for s in support]
        else:
            target = row_variance if row_variance < float(parameters.variance) else parameters.variance
            # Σ n·d² over 256 keys is even when Σ n·d = 0 (d² and d have the same parity).
            second_moment = 2 * round(float(target) * KEYS / 2)
            counts = _discretise(support, p, second_moment)
        ordered: list[int] = []
        for s, n in zip(support, counts, strict=True):
            ordered.extend([s] * n)
        adjustments = [0] * KEYS
        for position, key in enumerate(KEY_ORDER):
            adjustments[key] = ordered[position]
        rows[value] = tuple(adjustments)
    return Ptable(parameters=parameters, rows=rows)


@lru_cache(maxsize=64)
def cached_ptable(parameters: PtableParameters) -> Ptable:
    """The ptable of the parameters, generated once per process (a few milliseconds) and then shared: sites'
    policies name their parameters, and every count released under them looks its noise up here."""
    return generate_ptable(parameters)


# ---------------------------------------------------------------------------------------------------------------
# What a ptable costs and gives: the figures of docs/privacy.md
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowStatistics:
    """Of one row, exactly over the 256 keys (uniform cell keys)."""

    mean: Fraction
    variance: Fraction
    mean_absolute_error: Fraction
    exact: Fraction  # probability that the count is released unchanged
    difference_exact: Fraction  # two independent cells of this row: released difference = true difference


def row_statistics(adjustments: Sequence[int]) -> RowStatistics:
    n = len(adjustments)
    mean = Fraction(sum(adjustments), n)
    variance = Fraction(sum(a * a for a in adjustments), n) - mean * mean
    mae = Fraction(sum(abs(a) for a in adjustments), n)
    exact = Fraction(sum(1 for a in adjustments if a == 0), n)
    counts: dict[int, int] = {}
    for a in adjustments:
        counts[a] = counts.get(a, 0) + 1
    difference_exact = Fraction(sum(c * c for c in counts.values()), n * n)
    return RowStatistics(mean, variance, mae, exact, difference_exact)


def difference_exact_probability(first: Sequence[int], second: Sequence[int]) -> Fraction:
    """Two independently keyed cells with these rows: probability that their released difference is the true
    one (both adjustments equal)."""
    a = {v: sum(1 for x in first if x == v) for v in set(first)}
    b = {v: sum(1 for x in second if x == v) for v in set(second)}
    return Fraction(sum(c * b.get(v, 0) for v, c in a.items()), len(first) * len(second))


def worst_difference_exact(ptable: Ptable) -> tuple[Fraction, int, int]:
    """The largest probability, over every pair of released true counts, that their released difference is the
    true one, and the pair. Two counts both exactly at the threshold are left out: a true k is always released
    as k (see the module's docstring), so their difference is always exact — and says only that both are k."""
    values = [v for v in ptable.rows if v]
    k = ptable.parameters.threshold
    return max(
        (difference_exact_probability(ptable.rows[a], ptable.rows[b]), a, b)
        for a in values
        for b in values
        if a <= b and (a, b) != (k, k)
    )


def ptable_summary(ptable: Ptable) -> str:
    """The figures of a ptable as ``make_ptable`` prints them (and docs/privacy.md quotes them)."""
    p = ptable.parameters
    lines = [f"{FORMAT_NAME} {FORMAT_VERSION}: {p.describe()}"]
    lines.append("true count   mean  variance  mean |error|  exact  difference exact (two counts alike)")
    for value in sorted(ptable.rows):
        s = row_statistics(ptable.rows[value])
        label = f"{value}+" if value == p.open_from else str(value)
        lines.append(
            f"{label:>10} {float(s.mean):6.2f} {float(s.variance):9.4f} {float(s.mean_absolute_error):13.4f} "
            f"{float(s.exact):6.4f} {float(s.difference_exact):8.4f}"
        )
    worst, a, b = worst_difference_exact(ptable)
    lines.append(
        f"counts 1..{p.threshold - 1} withheld; worst pair for an exact difference: true {a} and {b}, "
        f"{float(worst):.4f} (about 1 in {float(1 / worst):.1f})"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The file: writing and loading with validation
# ---------------------------------------------------------------------------------------------------------------


def _ranges(adjustments: Sequence[int]) -> Iterable[tuple[int, int, int]]:
    start = 0
    for key in range(1, len(adjustments) + 1):
        if key == len(adjustments) or adjustments[key] != adjustments[start]:
            yield start, key - 1, adjustments[start]
            start = key


def ptable_to_csv(ptable: Ptable) -> str:
    out = io.StringIO()
    out.write(f"# {FORMAT_NAME} {FORMAT_VERSION}\n")
    out.write(f"# {ptable.parameters.describe()}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    open_from = ptable.parameters.open_from
    for value in sorted(ptable.rows):
        label = f"{value}+" if value == open_from else str(value)
        for key_from, key_to, adjustment in _ranges(ptable.rows[value]):
            writer.writerow([label, key_from, key_to, adjustment])
    return out.getvalue()


def ptable_file_name(parameters: PtableParameters) -> str:
    """A name that says the format version and the parameters, e.g. ``ptable-v2-D3-V1-k10.csv``."""
    variance = str(parameters.variance).replace("/", "over")
    return f"ptable-v{FORMAT_VERSION}-D{parameters.max_adjustment}-V{variance}-k{parameters.threshold}.csv"


_PARAMETER_RE = re.compile(r"(\w+)=(\S+)")


def _int(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PtableError(f"{where}: {what} must be a whole number, not {text!r}") from None


def _parameters(comments: list[tuple[int, str]], name: str) -> PtableParameters:
    if not comments or comments[0][1].split() != [FORMAT_NAME, str(FORMAT_VERSION)]:
        raise PtableError(f"{name}: the first line must be '# {FORMAT_NAME} {FORMAT_VERSION}' (format and version)")
    found: dict[str, str] = {}
    for _, text in comments[1:]:
        found.update(_PARAMETER_RE.findall(text))
    missing = [p for p in ("max_adjustment", "variance", "threshold") if p not in found]
    if missing:
        raise PtableError(f"{name}: the header comments do not give {', '.join(missing)}")
    try:
        variance = Fraction(found["variance"])
    except (ValueError, ZeroDivisionError):
        raise PtableError(f"{name}: variance must be a number, not {found['variance']!r}") from None
    parameters = PtableParameters(
        max_adjustment=_int(found["max_adjustment"], "max_adjustment", name),
        variance=variance,
        threshold=_int(found["threshold"], "threshold", name),
    )
    try:
        parameters.validate()
    except PtableError as exc:
        raise PtableError(f"{name}: {exc}") from None
    return parameters


def parse_ptable(text: str, *, name: str = "ptable") -> Ptable:
    """Read and validate a ptable. Every refusal names the line and what is wrong."""
    comments: list[tuple[int, str]] = []
    data: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append((number, line[1:].strip()))
        else:
            data.append((number, line))
    parameters = _parameters(comments, name)
    k, d, open_from = parameters.threshold, parameters.max_adjustment, parameters.open_from
    if not data or next(csv.reader([data[0][1]])) != list(HEADER):
        raise PtableError(f"{name}: the first line that is not a comment must be {','.join(HEADER)}")
    keys: dict[int, list[int | None]] = {}
    for number, line in data[1:]:
        where = f"{name} line {number}"
        fields = next(csv.reader([line]))
        if len(fields) != len(HEADER):
            raise PtableError(f"{where}: expected {len(HEADER)} fields, found {len(fields)}")
        label, key_from_text, key_to_text, adjustment_text = (f.strip() for f in fields)
        if label.endswith("+"):
            value = _int(label[:-1], "cell_value", where)
            if value != open_from:
                raise PtableError(
                    f"{where}: the open range must start at threshold + max_adjustment = {open_from}, not {value}"
                )
        else:
            value = _int(label, "cell_value", where)
            if value >= open_from:
                raise PtableError(f"{where}: counts from {open_from} up are the open row '{open_from}+', not {value}")
        if value < 0:
            raise PtableError(f"{where}: cell_value cannot be negative ({value})")
        if 0 < value < k:
            raise PtableError(f"{where}: counts 1 to {k - 1} are withheld and have no row (cell_value {value})")
        key_from = _int(key_from_text, "cell_key_from", where)
        key_to = _int(key_to_text, "cell_key_to", where)
        if not 0 <= key_from <= key_to <= KEYS - 1:
            raise PtableError(f"{where}: cell keys must satisfy 0 <= from <= to <= 255, not {key_from}..{key_to}")
        adjustment = _int(adjustment_text, "perturbation", where)
        if abs(adjustment) > d:
            raise PtableError(f"{where}: perturbation {adjustment} is beyond max_adjustment {d}")
        released = value + adjustment
        if value == 0 and adjustment != 0:
            raise PtableError(f"{where}: a true 0 stays 0 (perturbation {adjustment})")
        if released < 0:
            raise PtableError(f"{where}: {value} {adjustment:+d} would release a negative count")
        if 0 < released < k:
            raise PtableError(f"{where}: {value} {adjustment:+d} = {released} would release a count from 1 to {k - 1}")
        row = keys.setdefault(value, [None] * KEYS)
        for key in range(key_from, key_to + 1):
            if row[key] is not None:
                raise PtableError(f"{where}: cell key {key} of cell value {label} is already covered")
            row[key] = adjustment
    expected = [0, *range(k, open_from + 1)]
    missing_rows = [v for v in expected if v not in keys]
    if missing_rows:
        labels = [f"{v}+" if v == open_from else str(v) for v in missing_rows]
        raise PtableError(f"{name}: no rows for cell values {', '.join(labels)}")
    rows: dict[int, tuple[int, ...]] = {}
    for value in expected:
        row = keys[value]
        uncovered = [key for key, a in enumerate(row) if a is None]
        if uncovered:
            label = f"{value}+" if value == open_from else str(value)
            raise PtableError(f"{name}: cell value {label} does not cover cell keys {_spans(uncovered)}")
        complete = tuple(a for a in row if a is not None)
        if sum(complete) != 0:
            label = f"{value}+" if value == open_from else str(value)
            raise PtableError(
                f"{name}: the perturbations of cell value {label} add up to {sum(complete)} over the 256 keys, "
                "not 0: the noise would be biased"
            )
        rows[value] = complete
    return Ptable(parameters=parameters, rows=rows)


def _spans(keys: list[int]) -> str:
    spans = []
    for _, group in itertools.groupby(enumerate(keys), key=lambda pair: pair[1] - pair[0]):
        members = [key for _, key in group]
        spans.append(str(members[0]) if len(members) == 1 else f"{members[0]}-{members[-1]}")
    return ", ".join(spans)


def load_ptable(path: Path | str) -> Ptable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtableError(f"{path}: cannot read the ptable: {exc}") from None
    return parse_ptable(text, name=str(path))
