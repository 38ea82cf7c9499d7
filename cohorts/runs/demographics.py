"""Demographics and characterization of a cohort, computed at the site: aggregates only.

Each person is described at their first cohort entry (the index date): age, sex, race, ethnicity, year of index,
and the most frequent conditions, drugs, procedures and measurements recorded in the year before index (the 365
days up to and including the index date).

Beside the cohort, the site's whole population, to compare against (``population``): every person with an
observation period, described at the end of their latest observation period (age, sex), and, for each concept the
cohort lists, the persons with a record of it in the 365 days up to that date: a one-year window like the
cohort's, so that the two percentages compare like with like. The population depends on the CDM only, so a
worker keeps it per site and CDM fingerprint (``PopulationCache``). The SQL is the same on PostgreSQL
and DuckDB; schema names come from the source (validated), values are bound parameters. The cohort is a selection
of rows: the count path's temp tables, read in the count's own transaction.

With the site's record-key table (``record_keys``), every count comes with its cell key (``"key"``: the sum of
its persons' record keys modulo 256, ``disclosure.cellkey``) computed in the same query, and the result says how
many persons had no key (``"unkeyed"``); the portal perturbs each count with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from cohorts.expression.domains import DOMAINS
from warehouse.engines import quote_ident

AGE_BAND_YEARS = 10
TOP_N = 10
#: "The year before index": recorded on the index date or in the 365 days before it. (Results stored before the
#: characterization used 30 days; each result says its own window in ``index_lookback_days``.)
INDEX_LOOKBACK_DAYS = 365
#: The population's window: the 365 days up to the end of each person's latest observation period.
POPULATION_WINDOW_DAYS = 365
#: What the population is, as stored with it (the page explains it in words).
POPULATION_DEFINITION = "observation-period-last-year"

#: The most frequent concepts before index are listed for these domains; their tables and columns come from the
#: one table of domains.
TOP_DOMAINS = {
    label: (domain.table, domain.concept_column, domain.start_column)
    for label, domain in (
        ("conditions", DOMAINS["ConditionOccurrence"]),
        ("drugs", DOMAINS["DrugExposure"]),
        ("procedures", DOMAINS["ProcedureOccurrence"]),
        ("measurements", DOMAINS["Measurement"]),
    )
}


def _index_cte(cohort: str, cdm: str, keys: str | None) -> str:
    # Without a key table every key reads NULL (and is left out of the result).
    key_join = f"LEFT JOIN {keys} k ON k.person_id = idx.person_id" if keys else ""
    key_column = "k.record_key" if keys else "CAST(NULL AS INTEGER)"
    return f"""
        WITH idx AS (
            SELECT c.subject_id AS person_id, MIN(c.cohort_start_date) AS index_date
            FROM ({cohort}) c
            GROUP BY c.subject_id
        ), ppl AS (
            SELECT idx.person_id, idx.index_date, p.gender_concept_id, p.race_concept_id, p.ethnicity_concept_id,
                   CAST(EXTRACT(YEAR FROM idx.index_date) AS INTEGER) - p.year_of_birth AS age,
                   {key_column} AS record_key
            FROM idx JOIN {cdm}.person p ON p.person_id = idx.person_id
            {key_join}
        )"""


#: The count, cell key and unkeyed persons of a group of ``ppl`` rows (one per person).
_COUNTED = "COUNT(*), MOD(SUM(COALESCE(record_key, 0)), 256), SUM(CASE WHEN record_key IS NULL THEN 1 ELSE 0 END)"


class _Keys:
    """Collects the unkeyed persons of every count of one description."""

    def __init__(self, keyed: bool) -> None:
        self.keyed = keyed
        self.unkeyed = 0

    def cell(self, n: Any, key: Any, unkeyed: Any) -> dict[str, int]:
        if not self.keyed:
            return {"persons": int(n)}
        self.unkeyed = max(self.unkeyed, int(unkeyed or 0))
        return {"persons": int(n), "key": int(key or 0)}


def _named_counts(engine: Any, sql: str, params: dict[str, Any], keys: _Keys) -> list[dict[str, Any]]:
    return [
        {
            "concept_id": int(concept_id),
            "name": name or ("Unknown" if not concept_id else str(concept_id)),
            **keys.cell(n, key, unkeyed),
        }
        for concept_id, name, n, key, unkeyed in engine.fetchall(sql, params)
    ]


def cohort_demographics(
    engine: Any,
    *,
    cdm_schema: str,
    vocabulary_schema: str,
    cohort: tuple[str, dict[str, Any]],
    record_keys: str | None = None,
    population: PopulationCache | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """The demographics of the cohort whose rows ``cohort`` selects (``subject_id, cohort_start_date, ...``, with
    its parameters): on the count path, the temp tables of the count's own transaction
    (``CompiledCohort.cohort_select``); with the site's population beside it (``population``: the worker's
    cache, kept under ``site``, the site and its CDM's fingerprint; computed afresh without either)."""
    cdm, vocab = quote_ident(cdm_schema), quote_ident(vocabulary_schema)
    cohort_sql, cohort_params = cohort
    params = {**cohort_params, "band": AGE_BAND_YEARS, "lookback": INDEX_LOOKBACK_DAYS, "top": TOP_N}
    base = _index_cte(cohort_sql, cdm, record_keys)
    keys = _Keys(record_keys is not None)

    pyramid_rows = engine.fetchall(
        f"""{base}
        SELECT CASE WHEN age >= 90 THEN 9 WHEN age < 0 THEN 0 ELSE CAST(FLOOR(age / 10.0) AS INTEGER) END AS band,
               ppl.gender_concept_id, COALESCE(g.concept_name, 'Unknown'), {_COUNTED}
        FROM ppl LEFT JOIN {vocab}.concept g ON g.concept_id = ppl.gender_concept_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2""",
        params,
    )
    age_pyramid = [
        {
            "age_group": f"{band * AGE_BAND_YEARS}+"
            if band == 9
            else f"{band * AGE_BAND_YEARS}-{band * AGE_BAND_YEARS + 9}",
            "gender_concept_id": int(gender_id or 0),
            "gender": gender,
            **keys.cell(n, key, unkeyed),
        }
        for band, gender_id, gender, n, key, unkeyed in pyramid_rows
    ]

    def by_concept(column: str) -> list[dict[str, Any]]:
        return _named_counts(
            engine,
            f"""{base}
            SELECT COALESCE(ppl.{column}, 0), c.concept_name, {_COUNTED}
            FROM ppl LEFT JOIN {vocab}.concept c ON c.concept_id = ppl.{column}
            GROUP BY 1, 2 ORDER BY 3 DESC, 1""",
            params,
            keys,
        )

    index_years = [
        {"year": int(year), **keys.cell(n, key, unkeyed)}
        for year, n, key, unkeyed in engine.fetchall(
            f"""{base}
            SELECT CAST(EXTRACT(YEAR FROM index_date) AS INTEGER), {_COUNTED} FROM ppl GROUP BY 1 ORDER BY 1""",
            params,
        )
    ]
    top: dict[str, list[dict[str, Any]]] = {}
    for label, (table, concept_column, date_column) in TOP_DOMAINS.items():
        # One row per person and concept, so that a person counts once and adds their key once.
        top[label] = _named_counts(
            engine,
            f"""{base}, seen AS (
                SELECT DISTINCT ppl.person_id, ppl.record_key, e.{concept_column} AS concept_id
                FROM ppl JOIN {cdm}.{table} e ON e.person_id = ppl.person_id
                    AND e.{date_column} BETWEEN ppl.index_date - CAST(%(lookback)s AS INTEGER) AND ppl.index_date
                WHERE e.{concept_column} <> 0
            )
            SELECT seen.concept_id, c.concept_name, {_COUNTED}
            FROM seen LEFT JOIN {vocab}.concept c ON c.concept_id = seen.concept_id
            GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT %(top)s""",
            params,
            keys,
        )
    persons = engine.fetchone(f"{base} SELECT {_COUNTED} FROM ppl", params)
    n, key, unkeyed = persons if persons else (0, 0, 0)
    total = keys.cell(n, key, unkeyed)
    listed = {label: [int(row["concept_id"]) for row in rows] for label, rows in top.items()}
    if population is None:
        population = PopulationCache()
    site_population, population_unkeyed = population.describe(
        engine, site=site, cdm=cdm, vocab=vocab, keys=record_keys, listed=listed
    )
    if keys.keyed:
        keys.unkeyed = max(keys.unkeyed, population_unkeyed)
    out: dict[str, Any] = {
        "persons": total["persons"],
        "age_pyramid": age_pyramid,
        "gender": by_concept("gender_concept_id"),
        "race": by_concept("race_concept_id"),
        "ethnicity": by_concept("ethnicity_concept_id"),
        "index_year": index_years,
        "top_at_index": top,
        "index_lookback_days": INDEX_LOOKBACK_DAYS,
        "population": site_population,
    }
    if "key" in total:
        out["persons_key"] = total["key"]
        out["unkeyed"] = keys.unkeyed
    return out


def _population_cte(cdm: str, keys: str | None) -> str:
    """Every person with an observation period, at the end of their latest one (``end_date``)."""
    key_join = f"LEFT JOIN {keys} k ON k.person_id = obs.person_id" if keys else ""
    key_column = "k.record_key" if keys else "CAST(NULL AS INTEGER)"
    return f"""
        WITH obs AS (
            SELECT op.person_id, MAX(op.observation_period_end_date) AS end_date
            FROM {cdm}.observation_period op
            GROUP BY op.person_id
        ), ppl AS (
            SELECT obs.person_id, obs.end_date, p.gender_concept_id,
                   CAST(EXTRACT(YEAR FROM obs.end_date) AS INTEGER) - p.year_of_birth AS age,
                   {key_column} AS record_key
            FROM obs JOIN {cdm}.person p ON p.person_id = obs.person_id
            {key_join}
        )"""


class PopulationCache:
    """The site's whole population as ``cohort_demographics`` compares a cohort with it, kept by a worker process.

    The population depends on the CDM alone, so its figures are kept under the site and its CDM's fingerprint
    (a reload gives a new fingerprint, hence new entries): the total, its age groups by sex and sex alone once,
    and each concept's persons as cohorts list it (a new concept costs one query for all the new concepts of its
    domain). Figures read while some persons had no record key are not kept (the run is computed again once
    they have one). At most ``max_sites`` sites and fingerprints are kept; the least recently used go first.

    Measured on a 10,000-person synthetic DuckDB warehouse (the demo's size, a cohort of 9,541): the population's
    figures for one run take about 0.07 s of the characterization's 0.25 to 0.4 s, so on the demo the cache hardly
    matters. It is there for a hospital's CDM, where each of those figures reads a whole event table (hundreds of
    millions of rows) while the cohort's read its persons' rows only.
    """

    def __init__(self, max_sites: int = 16) -> None:
        self.max_sites = max_sites
        self._sites: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def describe(
        self,
        engine: Any,
        *,
        site: str | None,
        cdm: str,
        vocab: str,
        keys: str | None,
        listed: dict[str, list[int]],
    ) -> tuple[dict[str, Any], int]:
        """The population's figures for a cohort whose top concepts are ``listed`` (domain label → concept ids),
        and how many of its persons had no record key. ``cdm``, ``vocab``, ``keys``: quoted SQL names."""
        cache_key = f"{site}|{keys or ''}" if site else None
        with self._lock:
            held = self._sites.get(cache_key) if cache_key else None
            if held is not None:
                self._sites.move_to_end(cache_key)  # type: ignore[arg-type]
                held = {"base": held["base"], "concepts": {d: dict(c) for d, c in held["concepts"].items()}}
        unkeyed = 0
        if held is None:
            base, unkeyed = _population_base(engine, cdm=cdm, vocab=vocab, keys=keys)
            held = {"base": base, "concepts": {}}
        fresh: dict[str, dict[int, dict[str, int]]] = {}
        for label, concept_ids in listed.items():
            known = held["concepts"].setdefault(label, {})
            missing = [c for c in concept_ids if c not in known]
            if missing:
                cells, missing_unkeyed = _population_concepts(engine, cdm=cdm, keys=keys, label=label, ids=missing)
                unkeyed = max(unkeyed, missing_unkeyed)
                fresh[label] = cells
                known.update(cells)
        if cache_key and not unkeyed:
            with self._lock:
                stored = self._sites.setdefault(cache_key, {"base": held["base"], "concepts": {}})
                for label, cells in fresh.items():
                    stored["concepts"].setdefault(label, {}).update(cells)
                self._sites.move_to_end(cache_key)
                while len(self._sites) > self.max_sites:
                    self._sites.popitem(last=False)
        out = {
            **held["base"],
            "top": {
                label: [{"concept_id": c, **held["concepts"][label][c]} for c in concept_ids]
                for label, concept_ids in listed.items()
            },
        }
        return out, unkeyed


def _population_base(engine: Any, *, cdm: str, vocab: str, keys: str | None) -> tuple[dict[str, Any], int]:
    """The population's total, age groups by sex and sex (as the cohort's, in ``cohorts.runs.breakdowns``'s
    shape), and how many of its persons had no record key."""
    base = _population_cte(cdm, keys)
    counted = _Keys(keys is not None)
    persons = engine.fetchone(f"{base} SELECT {_COUNTED} FROM ppl", {})
    n, key, unkeyed = persons if persons else (0, 0, 0)
    total = counted.cell(n, key, unkeyed)
    pyramid = [
        {
            "age_group": f"{band * AGE_BAND_YEARS}+"
            if band == 9
            else f"{band * AGE_BAND_YEARS}-{band * AGE_BAND_YEARS + 9}",
            "gender_concept_id": int(gender_id or 0),
            **counted.cell(n, key, unkeyed),
        }
        for band, gender_id, n, key, unkeyed in engine.fetchall(
            f"""{base}
            SELECT CASE WHEN age >= 90 THEN 9 WHEN age < 0 THEN 0 ELSE CAST(FLOOR(age / 10.0) AS INTEGER) END,
                   COALESCE(ppl.gender_concept_id, 0), {_COUNTED}
            FROM ppl GROUP BY 1, 2 ORDER BY 1, 2""",
            {},
        )
    ]
    gender = _named_counts(
        engine,
        f"""{base}
        SELECT COALESCE(ppl.gender_concept_id, 0), c.concept_name, {_COUNTED}
        FROM ppl LEFT JOIN {vocab}.concept c ON c.concept_id = ppl.gender_concept_id
        GROUP BY 1, 2 ORDER BY 3 DESC, 1""",
        {},
        counted,
    )
    out: dict[str, Any] = {
        "definition": POPULATION_DEFINITION,
        "window_days": POPULATION_WINDOW_DAYS,
        "persons": total["persons"],
        "age_pyramid": pyramid,
        "gender": gender,
    }
    if "key" in total:
        out["persons_key"] = total["key"]
    return out, counted.unkeyed


def _population_concepts(
    engine: Any, *, cdm: str, keys: str | None, label: str, ids: list[int]
) -> tuple[dict[int, dict[str, int]], int]:
    """The population's persons with a record of each concept of ``ids`` (a domain of ``TOP_DOMAINS``) in the
    365 days up to the end of their latest observation period: concept id → cell (0 persons when none)."""
    table, concept_column, date_column = TOP_DOMAINS[label]
    counted = _Keys(keys is not None)
    # The ids are the site's own top concepts (integers read from its CDM), bound as parameters one by one.
    names = {f"c{i}": int(concept_id) for i, concept_id in enumerate(ids)}
    placeholders = ", ".join(f"%({name})s" for name in names)
    rows = engine.fetchall(
        f"""{_population_cte(cdm, keys)}, seen AS (
            SELECT DISTINCT ppl.person_id, ppl.record_key, e.{concept_column} AS concept_id
            FROM ppl JOIN {cdm}.{table} e ON e.person_id = ppl.person_id
                AND e.{date_column} BETWEEN ppl.end_date - CAST(%(window)s AS INTEGER) AND ppl.end_date
            WHERE e.{concept_column} IN ({placeholders})
        )
        SELECT seen.concept_id, {_COUNTED} FROM seen GROUP BY 1""",
        {**names, "window": POPULATION_WINDOW_DAYS},
    )
    cells: dict[int, dict[str, int]] = {int(c): {"persons": 0, "key": 0} if keys else {"persons": 0} for c in ids}
    for concept_id, n, key, unkeyed in rows:
        cells[int(concept_id)] = counted.cell(n, key, unkeyed)
    return cells, counted.unkeyed
