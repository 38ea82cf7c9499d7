"""Runs made in the portal's database as the sites' workers would have finished them, for tests that read results
without running a count."""

from __future__ import annotations

import re
from typing import Any

from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from disclosure.ptable import (
    DEFAULT_MAX_ADJUSTMENT,
    DEFAULT_THRESHOLD,
    DEFAULT_VARIANCE,
    PtableParameters,
    cached_ptable,
)
from jobs.choices import JobState

#: The ptable of a site with the default policy.
DEFAULT_PTABLE = cached_ptable(
    PtableParameters(max_adjustment=DEFAULT_MAX_ADJUSTMENT, variance=DEFAULT_VARIANCE, threshold=DEFAULT_THRESHOLD)
)


def unperturbed_key(count: int) -> int:
    """A cell key whose noise under the default ptable is 0 for a true ``count``.

    Results built by hand for tests about who sees what (access, breakdowns, suppression) carry these keys, so
    that each site's own numbers read as their true counts there; a number made of several cells (a total over
    sites, a bucket summing several site cells) has the sum of their keys and is perturbed like any other. The
    noise itself is tested in ``disclosure/tests`` and by the walk over every output
    (``cohorts/tests/test_every_released_count_is_perturbed.py``)."""
    adjustments = DEFAULT_PTABLE.adjustments(count)
    return 0 if adjustments is None else adjustments.index(0)


def released(count: int, key: int, *, round_to: int = 1) -> int:
    """What the default ptable releases for a true ``count`` (at least the threshold) with cell ``key``, rounded
    like an aggregate-only role's count when ``round_to`` is given."""
    adjustments = DEFAULT_PTABLE.adjustments(count)
    assert adjustments is not None and count >= DEFAULT_THRESHOLD
    value = count + adjustments[key]
    if round_to > 1:
        value = max(DEFAULT_THRESHOLD, ((value + round_to // 2) // round_to) * round_to)
    return value


def released_sum(*counts: int, round_to: int = 1) -> int:
    """What the default ptable releases for the cell made of several cells of ``counts`` (each carrying its
    ``unperturbed_key``): a total over sites, or a bucket summing several site cells. Its key is the sum of theirs,
    so its noise is its own, usually not 0."""
    return released(sum(counts), sum(unperturbed_key(n) for n in counts) % 256, round_to=round_to)


def with_cell_keys(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with a cell key on every count that has none (``unperturbed_key``), as a site's worker stores
    them."""
    out = dict(result)
    if "persons" in out and "persons_key" not in out:
        out["persons_key"] = unperturbed_key(int(out["persons"]))
    for name, value in result.items():
        if isinstance(value, list):
            out[name] = [
                {**item, "key": unperturbed_key(int(item["persons"]))}
                if isinstance(item, dict) and "persons" in item and "key" not in item
                else item
                for item in value
            ]
        elif isinstance(value, dict) and name == "demographics":
            out[name] = with_cell_keys(value)
        elif isinstance(value, dict) and name == "top_at_index":
            out[name] = {label: with_cell_keys({"rows": rows})["rows"] for label, rows in value.items()}
    return out


def finished_run(
    version: Any, source: Any, user: Any, *, kind: str, cache_key: str, result: dict[str, Any]
) -> CohortRun:
    """A run of ``version`` at ``source`` that the site's worker finished with ``result`` (aggregates as it stores
    them, a cell key added to every count given without one: ``with_cell_keys``), under the source's current
    fingerprint."""
    return CohortRun.objects.create(
        version=version,
        source=source,
        kind=kind,
        cache_key=cache_key,
        source_fingerprint=source.fingerprint,
        requested_by=user,
        state=JobState.SUCCEEDED,
        result=with_cell_keys(result),
    )


def count_request(version: Any, user: Any, counts: dict[Any, int]) -> RunRequest:
    """A count request of ``version`` by ``user``, finished at each source of ``counts`` with that many persons
    (the shape a worker stores), as if the sites had answered."""
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=user
    )
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
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.DEMOGRAPHICS, requested_by=user
    )
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


def numbers_in(value: Any, key: str = "") -> set[int]:
    """Every whole number the status shows, as a value or inside any text, except in its timestamps (``queued_at``:
    their microseconds would match any three digits)."""
    if key.endswith("_at"):
        return set()
    if isinstance(value, dict):
        return set().union(*(numbers_in(v, str(k)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return set().union(*(numbers_in(v) for v in value))
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(token) for token in re.findall(r"\d+", str(value))}
