"""The sites of the attack suite: GiBleed in a DuckDB warehouse, counted by the sites' own code.

A ``Site`` is what a site's worker has: its CDM, its results schema and its record-key secret (read from the
worker's environment, ``SOYANG_SOURCE_<KEY>_RECORD_KEY_SECRET``, which the suite sets per site).
``Site.generate`` runs a definition through the worker's own computation
(``cohorts.runs.execution.compute_run_result``: the count path, its counts and cell keys, its demographics) and
keeps, beside the aggregates the worker would store on the run, the truth from the engine: the persons of the
cohort, generated apart (``generate_cohort``, ``cohort_rows``), which never leave the site in production.

Generation is the slow part (about 0.1 s per definition, 0.4 s with 30 rules), so every definition is generated
once per test session and site; the portal side (runs, requests, releases) is rebuilt by each test in its own
transaction from the stored aggregates.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cohorts.expression import parse_expression
from cohorts.runs.choices import RunKind
from cohorts.runs.execution import compute_run_result
from cohorts.runs.generation import cohort_rows, generate_cohort
from warehouse.engines import Engine, quote_ident


@dataclass(frozen=True)
class SiteRun:
    """What ``compute_run_result`` reads of a run: its id (the cohort id its rows are written under) and kind."""

    pk: int
    kind: str


class _Unwatched:
    """Progress reports go nowhere: no portal is polling these runs."""

    def report(self, step: int, total: int, label: str) -> None:
        return None


@dataclass(frozen=True)
class Generated:
    """One definition generated at one site."""

    site: str
    name: str
    expression: dict[str, Any]
    kind: str
    #: The run's result exactly as the site's worker stores it (true counts and cell keys).
    result: dict[str, Any]
    #: Truth from the engine: person id → index date (first cohort entry), from the cohort's rows.
    index_dates: dict[int, dt.date]

    @property
    def persons(self) -> frozenset[int]:
        return frozenset(self.index_dates)


@dataclass
class Site:
    """A site's worker side: its schemas, its connection, and what it has generated this session. It stands in
    for the ``Source`` row where the site's code reads one (``key``, the schemas and ``count_store`` are all it
    reads)."""

    key: str
    engine: Engine
    cdm_schema: str
    vocabulary_schema: str
    results_schema: str
    #: The DuckDB warehouse is counted in place (count stores are for PostgreSQL sites).
    count_store: bool = False
    _generated: dict[str, Generated] = field(default_factory=dict)

    def generate(self, name: str, expression: dict[str, Any], *, kind: str = RunKind.COUNT) -> Generated:
        """The definition ``name`` generated here (once per session: the same name is the same definition)."""
        known = self._generated.get(name)
        if known is not None:
            assert known.expression == expression and known.kind == kind, f"{name} names two definitions"
            return known
        run = SiteRun(pk=len(self._generated) + 1, kind=kind)
        parsed = parse_expression(expression)
        result = compute_run_result(self.engine, source=self, run=run, expression=parsed, progress=_Unwatched())
        # The worker counts without writing rows; the truth comes from the same definition generated apart.
        schemas = {"cdm_schema": self.cdm_schema, "vocabulary_schema": self.vocabulary_schema}
        generate_cohort(self.engine, parsed, results_schema=self.results_schema, cohort_id=run.pk, **schemas)
        rows = cohort_rows(self.engine, results_schema=self.results_schema, cohort_id=run.pk)
        index: dict[int, dt.date] = {}
        for person, start, _ in rows:  # sorted by person, then start: the first row is the index
            index.setdefault(person, start)
        assert len(index) == result["persons"], f"{name}: the engine's count and rows disagree"
        generated = Generated(self.key, name, expression, kind, result, index)
        self._generated[name] = generated
        return generated


@dataclass
class Warehouse:
    """GiBleed at two sites (``north``, ``south``): the same CDM, each site with its own results schema and
    record-key secret, as two hospitals with copies of one data set would have."""

    engine: Engine
    cdm_schema: str
    sites: dict[str, Site]
    _year_of_birth: dict[int, int] = field(default_factory=dict)

    def year_of_birth(self, person: int) -> int:
        if not self._year_of_birth:
            table = f"{quote_ident(self.cdm_schema)}.person"
            self._year_of_birth = {
                int(p): int(y) for p, y in self.engine.fetchall(f"SELECT person_id, year_of_birth FROM {table}")
            }
        return self._year_of_birth[person]

    def ages(self, generated: Generated) -> Counter[int]:
        """Persons of a cohort by age at index (Circe's age: year of the index date minus year of birth)."""
        return Counter(date.year - self.year_of_birth(person) for person, date in generated.index_dates.items())

    def descendants(self, concept_id: int) -> list[int]:
        """The concept and its descendants in the site's vocabulary."""
        table = f"{quote_ident(self.cdm_schema)}.concept_ancestor"
        rows = self.engine.fetchall(
            f"SELECT descendant_concept_id FROM {table} WHERE ancestor_concept_id = %(concept)s ORDER BY 1",
            {"concept": concept_id},
        )
        return sorted({concept_id, *(int(row[0]) for row in rows)})


def small_ages(ages: Counter[int], *, threshold: int, most: int) -> list[int]:
    """Up to ``most`` ages held by 1 to ``threshold`` - 1 persons: the small groups an attack goes after, spread
    over the range of ages."""
    small = sorted(age for age, n in ages.items() if 0 < n < threshold)
    step = max(1, len(small) // most)
    return small[::step][:most]
