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
from datetime import date, datetime, timedelta
from typing import Any

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


def age_group(age: int | None, *, max_age: int) -> str:
    """Five-year bands up to ``max_age``; everybody older falls in one top group (e.g. ``90+``)."""
    if age is None:
        return "unknown"
    if age > max_age:
        return f"{max_age + 1}+"
    age = max(age, 0)
    low = (age // 5) * 5
    high = min(low + 4, max_age)
    return f"{low}-{high}"


def k_anonymous(quasi_identifiers: dict[int, Hashable], *, k: int) -> tuple[set[int], int]:
    """The persons whose quasi-identifier combination is shared by at least ``k`` persons, and how many were
    suppressed (dropped entirely: their rows leave no table)."""
    sizes = Counter(quasi_identifiers.values())
    kept = {pid for pid, qi in quasi_identifiers.items() if sizes[qi] >= k}
    return kept, len(quasi_identifiers) - len(kept)


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
