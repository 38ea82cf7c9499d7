"""De-identification rules of an extract, as plain functions (no Django, no database).

Invariants:
- Pseudonyms and date offsets come from ``random.SystemRandom`` (the operating system's CSPRNG) and live only in
  the memory of the extraction: nothing that could map them back to patients is stored anywhere.
- A person's offset is the same for every date of that person (intervals inside a person are kept) and never 0,
  so no event keeps its original date.
- Surrogates are assigned in the order of the de-identified output (pseudonym, shifted date), never in the order
  of the original ids, so they carry nothing of the source's numbering.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from datasets.catalogue import AGE_GROUP

_rng = random.SystemRandom()


def pseudonyms(person_ids: Iterable[int]) -> dict[int, str]:
    """A random, unique pseudonym per person (``P`` + 12 hex digits), unrelated to the id."""
    result: dict[int, str] = {}
    used: set[str] = set()
    for person_id in person_ids:
        while True:
            candidate = f"P{_rng.getrandbits(48):012x}"
            if candidate not in used:
                used.add(candidate)
                result[person_id] = candidate
                break
    return result


def date_offsets(person_ids: Iterable[int], *, max_days: int) -> dict[int, int]:
    """A random offset in days per person, uniformly in ±1..max_days (never 0)."""
    if max_days < 1:
        raise ValueError("the date shift must be at least one day")
    return {pid: _rng.randint(1, max_days) * _rng.choice((-1, 1)) for pid in person_ids}


def as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def deidentify_date(value: Any, *, offset: int, mode: str) -> str:
    """The date shifted by the person's offset (``shift``) or reduced to ``YYYY-MM`` (``year_month``)."""
    original = as_date(value)
    if original is None:
        return ""
    if mode == "year_month":
        return f"{original.year:04d}-{original.month:02d}"
    return (original + timedelta(days=offset)).isoformat()


def age_group(age: int | None, *, max_age: int, width: int = 5) -> str:
    """Bands of ``width`` years up to ``max_age``; everybody older falls in one top group (e.g. ``90+``)."""
    if age is None:
        return "unknown"
    if age > max_age:
        return f"{max_age + 1}+"
    age = max(age, 0)
    low = (age // width) * width
    high = min(low + width - 1, max_age)
    return f"{low}-{high}"


def k_anonymous(quasi_identifiers: dict[int, Hashable], *, k: int) -> tuple[set[int], int]:
    """The persons whose quasi-identifier combination is shared by at least ``k`` persons, and how many were
    suppressed (dropped entirely: their rows leave no table)."""
    sizes = Counter(quasi_identifiers.values())
    kept = {pid for pid, qi in quasi_identifiers.items() if sizes[qi] >= k}
    return kept, len(quasi_identifiers) - len(kept)


#: Most persons an extract may suppress to reach k-anonymity, as a percentage of the cohort (at least k - 1
#: persons: one group too small to keep). Beyond it the extract is refused rather than released with a silently
#: biased population.
MAX_SUPPRESSED_PERCENT = 5


def suppression_cap(persons: int, *, k: int) -> int:
    return max(k - 1, persons * MAX_SUPPRESSED_PERCENT // 100)


@dataclass(frozen=True)
class Generalization:
    """One step of the ladder: how the quasi-identifiers are released."""

    name: str
    birth_year: bool  # the year of birth released as it is (else withheld: the age group carries the age)
    age_width: int  # years per age group
    withheld: tuple[str, ...] = ()  # demographic columns released empty

    def describe(self) -> str:
        parts = [
            "year of birth released" if self.birth_year else "year of birth withheld",
            f"age groups of {self.age_width} years",
        ]
        if self.withheld:
            parts.append(f"withheld: {', '.join(self.withheld)}")
        return "; ".join(parts)


def ladder(demographics: list[str]) -> list[Generalization]:
    """The generalizations to try, least first: the year of birth is withheld (the age group stays), then the age
    groups widen from 5 to 10 years, then the demographic columns are withheld from the last in catalogue order to
    the second (sex, the first, stays: it is what nearly every analysis needs)."""
    steps = [
        Generalization("exact", True, 5),
        Generalization("age_5y", False, 5),
        Generalization("age_10y", False, 10),
    ]
    for cut in range(len(demographics) - 1, 0, -1):
        withheld = tuple(demographics[cut:])
        steps.append(Generalization(f"age_10y_without_{'_'.join(withheld)}", False, 10, withheld))
    return steps


def released_quasi(person: dict[str, Any], step: Generalization, *, columns: list[str], max_age: int) -> dict[str, Any]:
    """The values a person's quasi-identifier ``columns`` take in the file under ``step``. ``person`` holds the
    raw values and ``age`` (at the index date, None when unknown)."""
    age = person.get("age")
    out: dict[str, Any] = {}
    for column in columns:
        if column == AGE_GROUP:
            out[column] = age_group(age, max_age=max_age, width=step.age_width)
        elif column == "year_of_birth":
            keep = step.birth_year and age is not None and age <= max_age
            out[column] = person.get(column) if keep else None
        else:
            out[column] = None if column in step.withheld else person.get(column)
    return out


def generalize(
    people: dict[int, dict[str, Any]], *, columns: list[str], demographics: list[str], k: int, max_age: int
) -> tuple[Generalization, set[int], int] | None:
    """The least generalization under which suppressing the persons of groups smaller than ``k`` stays within the
    cap, with the persons kept and the number suppressed; None when no step of the ladder gets there."""
    cap = suppression_cap(len(people), k=k)
    for step in ladder(demographics):
        quasi = {
            pid: tuple(released_quasi(person, step, columns=columns, max_age=max_age).values())
            for pid, person in people.items()
        }
        kept, suppressed = k_anonymous(quasi, k=k)
        if suppressed <= cap:
            return step, kept, suppressed
    return None


class Surrogates:
    """Per-request sequential surrogates for one kind of id (``V000001``…), stable inside the extract so that a
    condition still points at its visit."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._map: dict[Any, str] = {}

    def __call__(self, value: Any) -> str:
        if value is None or value == "":
            return ""
        if value not in self._map:
            self._map[value] = f"{self.prefix}{len(self._map) + 1:06d}"
        return self._map[value]
