"""Demographics of a cohort, computed at the site: aggregates only.

Each person is described at their first cohort entry (the index date). The SQL is the same on PostgreSQL
and DuckDB; schema names come from the source (validated), values are bound parameters. The cohort is a selection
of rows: the count path's temp tables, read in the count's own transaction.

With the site's record-key table (``record_keys``), every count comes with its cell key (``"key"``: the sum of
its persons' record keys modulo 256, ``disclosure.cellkey``) computed in the same query, and the result says how
many persons had no key (``"unkeyed"``); the portal perturbs each count with it.
"""

from __future__ import annotations

from typing import Any

from cohorts.expression.domains import DOMAINS
from warehouse.engines import quote_ident

AGE_BAND_YEARS = 10
TOP_N = 10
# "At index": recorded on the index date or in the 30 days before it.
INDEX_LOOKBACK_DAYS = 30

#: The most frequent concepts at index are listed for these domains; their tables and columns come from the one
#: table of domains.
TOP_DOMAINS = {
    label: (domain.table, domain.concept_column, domain.start_column)
    for label, domain in (
        ("conditions", DOMAINS["ConditionOccurrence"]),
        ("drugs", DOMAINS["DrugExposure"]),
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
) -> dict[str, Any]:
    """The demographics of the cohort whose rows ``cohort`` selects (``subject_id, cohort_start_date, ...``, with
    its parameters): on the count path, the temp tables of the count's own transaction
    (``CompiledCohort.cohort_select``)."""
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
    out: dict[str, Any] = {
        "persons": total["persons"],
        "age_pyramid": age_pyramid,
        "gender": by_concept("gender_concept_id"),
        "race": by_concept("race_concept_id"),
        "ethnicity": by_concept("ethnicity_concept_id"),
        "index_year": index_years,
        "top_at_index": top,
        "index_lookback_days": INDEX_LOOKBACK_DAYS,
    }
    if "key" in total:
        out["persons_key"] = total["key"]
        out["unkeyed"] = keys.unkeyed
    return out
