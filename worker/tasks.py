"""Thin Celery tasks: they take ids and call services.

Every task acknowledges late and is rejected (so redelivered) when its worker process dies, with one
message prefetched at a time: a killed worker loses no work.
"""

from __future__ import annotations

from celery import shared_task

from cohorts.retention import results_prune as results_prune_service
from cohorts.retention import results_prune_enqueue
from cohorts.runs.execution import run_execute as run_execute_service
from cohorts.runs.execution import run_give_up
from datasets import services as dataset_services
from portal import services as portal_services
from warehouse.engines import TransientEngineError
from warehouse.vocabulary.counts import concept_counts_refresh_for_source

#: How often a run is retried when its site's database is unreachable or locked, before it fails.
TRANSIENT_RETRIES = 6


@shared_task(
    name="worker.tasks.run_execute",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=TRANSIENT_RETRIES,
)
def run_execute(self, *, run_id: int) -> str:
    try:
        outcome = run_execute_service(run_id=run_id, worker=self.request.hostname or "")
    except TransientEngineError as exc:
        if self.request.retries >= TRANSIENT_RETRIES:
            run_give_up(run_id=run_id, reason=str(exc))
            return "failed"
        # Exponential backoff: 1, 2, 4, 8… seconds, capped.
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
    if outcome.retry_in is not None:
        # Another worker holds the run's lease; look again once it would have lapsed. Unbounded on purpose:
        # the run ends when that worker finishes it or dies.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.state


# --- dataset requests (datasets/) ---------------------------------------------------------------------------------


@shared_task(
    name="worker.tasks.datasets_project_site",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=TRANSIENT_RETRIES,
)
def datasets_project_site(self, *, review_id: int) -> str:
    """On the site's queue: the cohort and projected row counts of a dataset request."""
    try:
        return dataset_services.projection_execute(review_id=review_id)
    except TransientEngineError as exc:
        if self.request.retries >= TRANSIENT_RETRIES:
            dataset_services.projection_give_up(review_id=review_id, reason=str(exc))
            return "failed"
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc


@shared_task(
    name="worker.tasks.datasets_extract_site",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=TRANSIENT_RETRIES,
)
def datasets_extract_site(self, *, extract_id: int) -> str:
    """On the site's queue: build the de-identified extract of an approved request."""
    try:
        return dataset_services.extraction_execute(extract_id=extract_id)
    except TransientEngineError as exc:
        if self.request.retries >= TRANSIENT_RETRIES:
            dataset_services.extraction_fail(extract_id=extract_id, reason=f"The site could not be reached: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc


@shared_task(name="worker.tasks.datasets_expire", acks_late=True)
def datasets_expire() -> int:
    """Celery beat: delete the files of expired datasets and mark them expired."""
    return dataset_services.requests_expire()


# --- results retention (cohorts/) ----------------------------------------------------------------------------------


@shared_task(name="worker.tasks.results_prune", acks_late=True)
def results_prune() -> int:
    """Celery beat, on the portal: one prune task on each active site's queue."""
    return results_prune_enqueue()


@shared_task(name="worker.tasks.results_prune_site", acks_late=True, reject_on_worker_lost=True)
def results_prune_site(*, source_id: int) -> str:
    """On the site's queue: delete the rows of the site's cohorts past their retention. Not retried: a prune
    stopped by the site's database leaves the rest unrecorded, and the next beat's prune takes it up."""
    report = results_prune_service(source_id=source_id)
    if report.busy:
        return "busy"
    if report.error:
        return f"stopped after {len(report.pruned)} of {report.due} cohorts: {report.error}"
    return f"{len(report.pruned)} cohorts, {report.rows} rows"


# --- sessions (portal/) ---------------------------------------------------------------------------------------------


@shared_task(name="worker.tasks.sessions_clear", acks_late=True)
def sessions_clear() -> int:
    """Celery beat, on the portal: delete the sessions that have expired; returns how many there were."""
    return portal_services.sessions_clear_expired()


# --- vocabulary (warehouse/) ---------------------------------------------------------------------------------------


@shared_task(name="worker.tasks.concept_counts_refresh", acks_late=True, reject_on_worker_lost=True)
def concept_counts_refresh(*, source_id: int) -> int:
    """On the site's queue: records and persons per standard concept, stored as aggregates in the portal."""
    return concept_counts_refresh_for_source(source_id=source_id)
