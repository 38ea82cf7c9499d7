"""The record and person counts per concept that the concept-set pages show beside each concept: computed at the
site by its worker (``warehouse.vocabulary.counts`` does the counting), queued here on the site's queue."""

from __future__ import annotations

from jobs.enqueue import job_send
from jobs.queues import site_queue
from warehouse.models import Source
from warehouse.vocabulary.counts import concept_counts_refresh_for_source

#: The worker's task that counts at one site (sent by name: cohorts does not import the worker package).
CONCEPT_COUNTS_TASK = "worker.tasks.concept_counts_refresh"


def concept_counts_enqueue(*, source: Source) -> str:
    """Queue the refresh of ``source``'s counts for its worker, the process allowed to reach its database; returns
    the task's id."""
    return str(job_send(CONCEPT_COUNTS_TASK, queue=site_queue(source.key), kwargs={"source_id": source.pk}).id)


def concept_counts_refresh_at_site(*, source_id: int) -> int:
    """Count at the site, in this process (the site's worker, or the operator's ``--now``); returns the concepts
    counted. The worker calls this service of the app that shows the counts, never the warehouse directly."""
    return concept_counts_refresh_for_source(source_id=source_id)
