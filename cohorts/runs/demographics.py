"""Demographics of a generated cohort, computed at the site: aggregates only.

Each person is described at their first cohort entry (the index date). The SQL is the same on PostgreSQL
and DuckDB; schema names come from the source (validated), the cohort id is an integer parameter.
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


def _index_cte(results: str, cdm: str) -> str:
    return f"""
        WITH idx AS (
            SELECT c.subject_id AS person_id, MIN(c.cohort_start_date) AS index_date
            FROM {results}.cohort c
            WHERE c.cohort_definition_id = %(cohort_id)s
            GROUP BY c.subject_id
        ), ppl AS (
            SELECT idx.person_id, idx.index_date, p.gender_concept_id, p.race_concept_id, p.ethnicity_concept_id,
                   CAST(EXTRACT(YEAR FROM idx.index_date) AS INTEGER) - p.year_of_birth AS age
            FROM idx JOIN {cdm}.person p ON p.person_id = idx.person_id
        )"""


def _named_counts(engine: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "concept_id": int(concept_id),
            "name": name or ("Unknown" if not concept_id else str(concept_id)),
            "persons": int(n),
        }
        for concept_id, name, n in engine.fetchall(sql, params)
    ]


def cohort_demographics(
    engine: Any, *, cdm_schema: str, vocabulary_schema: str, results_schema: str, cohort_id: int
) -> dict[str, Any]:
    cdm, vocab, results = quote_ident(cdm_schema), quote_ident(vocabulary_schema), quote_ident(results_schema)
    params = {"cohort_id": int(cohort_id), "band": AGE_BAND_YEARS, "lookback": INDEX_LOOKBACK_DAYS, "top": TOP_N}
    base = _index_cte(results, cdm)

    pyramid_rows = engine.fetchall(
        f"""{base}
        SELECT CASE WHEN age >= 90 THEN 9 WHEN age < 0 THEN 0 ELSE CAST(FLOOR(age / 10.0) AS INTEGER) END AS band,
               ppl.gender_concept_id, COALESCE(g.concept_name, 'Unknown'), COUNT(*)
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
            "persons": int(n),
        }
        for band, gender_id, gender, n in pyramid_rows
    ]

    def by_concept(column: str) -> list[dict[str, Any]]:
        return _named_counts(
            engine,
            f"""{base}
            SELECT COALESCE(ppl.{column}, 0), c.concept_name, COUNT(*)
            FROM ppl LEFT JOIN {vocab}.concept c ON c.concept_id = ppl.{column}
            GROUP BY 1, 2 ORDER BY 3 DESC, 1""",
            params,
        )

    index_years = [
        {"year": int(year), "persons": int(n)}
        for year, n in engine.fetchall(
            f"""{base}
            SELECT CAST(EXTRACT(YEAR FROM index_date) AS INTEGER), COUNT(*) FROM ppl GROUP BY 1 ORDER BY 1""",
            params,
        )
    ]
    top: dict[str, list[dict[str, Any]]] = {}
    for label, (table, concept_column, date_column) in TOP_DOMAINS.items():
        top[label] = _named_counts(
            engine,
            f"""{base}
            SELECT e.{concept_column}, c.concept_name, COUNT(DISTINCT e.person_id) AS persons
            FROM ppl JOIN {cdm}.{table} e ON e.person_id = ppl.person_id
                AND e.{date_column} BETWEEN ppl.index_date - CAST(%(lookback)s AS INTEGER) AND ppl.index_date
            LEFT JOIN {vocab}.concept c ON c.concept_id = e.{concept_column}
            WHERE e.{concept_column} <> 0
            GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT %(top)s""",
            params,
        )
    persons = engine.fetchone(f"{base} SELECT COUNT(*) FROM ppl", params)
    return {
        "persons": int(persons[0]) if persons else 0,
        "age_pyramid": age_pyramid,
        "gender": by_concept("gender_concept_id"),
        "race": by_concept("race_concept_id"),
        "ethnicity": by_concept("ethnicity_concept_id"),
        "index_year": index_years,
        "top_at_index": top,
        "index_lookback_days": INDEX_LOOKBACK_DAYS,
    }
