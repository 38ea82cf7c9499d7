"""Runs made in the portal's database as the sites' workers would have finished them, for tests that read results
without running a count."""

from __future__ import annotations

from typing import Any

from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from jobs.choices import JobState


def count_request(version: Any, user: Any, counts: dict[Any, int]) -> RunRequest:
    """A count request of ``version`` by ``user``, finished at each source of ``counts`` with that many persons
    (the shape a worker stores), as if the sites had answered."""
    request = RunRequest.objects.create(version=version, kind=RunKind.COUNT, requested_by=user)
    for source, persons in counts.items():
        run = CohortRun.objects.create(
            version=version,
            source=source,
            kind=RunKind.COUNT,
            cache_key=f"diff-{source.key}-{len(counts)}",
            source_fingerprint=source.fingerprint,
            requested_by=user,
            state=JobState.SUCCEEDED,
            result={
                "persons": persons,
                "rows": persons,
                "inclusion_rules": [],
                "attrition": [{"name": "entry events", "persons": persons}],
            },
        )
        request.runs.add(run)
    return request
