"""Runs made in the portal's database as the sites' workers would have finished them, for tests that read results
without running a count."""

from __future__ import annotations

from typing import Any

from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from jobs.choices import JobState


def finished_run(
    version: Any, source: Any, user: Any, *, kind: str, cache_key: str, result: dict[str, Any]
) -> CohortRun:
    """A run of ``version`` at ``source`` that the site's worker finished with ``result`` (aggregates as it stores
    them), under the source's current fingerprint."""
    return CohortRun.objects.create(
        version=version,
        source=source,
        kind=kind,
        cache_key=cache_key,
        source_fingerprint=source.fingerprint,
        requested_by=user,
        state=JobState.SUCCEEDED,
        result=result,
    )


def count_request(version: Any, user: Any, counts: dict[Any, int]) -> RunRequest:
    """A count request of ``version`` by ``user``, finished at each source of ``counts`` with that many persons
    (the shape a worker stores), as if the sites had answered."""
    request = RunRequest.objects.create(version=version, kind=RunKind.COUNT, requested_by=user)
    for source, persons in counts.items():
        run = finished_run(
            version,
            source,
            user,
            kind=RunKind.COUNT,
            cache_key=f"diff-{source.key}-{len(counts)}",
            result={
                "persons": persons,
                "rows": persons,
                "inclusion_rules": [],
                "attrition": [{"name": "entry events", "persons": persons}],
            },
        )
        request.runs.add(run)
    return request


def raw_demographics(
    persons: int,
    *,
    race: dict[int, int] | None = None,
    top: dict[int, int] | None = None,
    gender_concept_id: int = 8532,
) -> dict[str, Any]:
    """A site's demographics as its worker stores them: only the buckets with members, every person a woman of
    40-49 whose index year is 2020, split by race as ``race`` says (concept id → persons; all White if not
    given), with the top conditions ``top`` (concept id → persons)."""
    return {
        "persons": persons,
        "age_pyramid": [
            {"age_group": "40-49", "gender_concept_id": gender_concept_id, "gender": "FEMALE", "persons": persons}
        ],
        "gender": [{"concept_id": gender_concept_id, "name": "FEMALE", "persons": persons}],
        "race": [
            {"concept_id": concept_id, "name": f"race {concept_id}", "persons": n}
            for concept_id, n in (race or {8527: persons}).items()
        ],
        "ethnicity": [{"concept_id": 38003564, "name": "Not Hispanic or Latino", "persons": persons}],
        "index_year": [{"year": 2020, "persons": persons}],
        "top_at_index": {
            "conditions": [
                {"concept_id": concept_id, "name": f"condition {concept_id}", "persons": n}
                for concept_id, n in (top or {}).items()
            ]
        },
        "index_lookback_days": 30,
    }


def demographics_request(version: Any, user: Any, sites: dict[Any, dict[str, Any]]) -> RunRequest:
    """A demographics request of ``version`` by ``user``, finished at each source of ``sites`` with those
    demographics (``raw_demographics``), one attrition step and one inclusion rule."""
    request = RunRequest.objects.create(version=version, kind=RunKind.DEMOGRAPHICS, requested_by=user)
    for source, demographics in sites.items():
        persons = demographics["persons"]
        run = finished_run(
            version,
            source,
            user,
            kind=RunKind.DEMOGRAPHICS,
            cache_key=f"demographics-{source.key}-{request.pk}",
            result={
                "persons": persons,
                "rows": persons,
                "inclusion_rules": [{"name": "aged 40 or more", "persons": persons}],
                "attrition": [
                    {"name": "entry events", "persons": persons + 3},
                    {"name": "aged 40", "persons": persons},
                ],
                "demographics": demographics,
            },
        )
        request.runs.add(run)
    return request
