"""Thin Celery tasks: they take ids and call one service (``worker.decorators.soyang_task`` for how they are
acknowledged, redelivered and retried). Task names are the public names the apps send by (``jobs.enqueue``)."""

from __future__ import annotations

from celery import current_task

from accounts.services import sessions_clear_expired
from cohorts.concept_sets.counts import concept_counts_refresh_at_site
from cohorts.runs import comparison_services, stores
from cohorts.runs.execution import run_execute as run_execute_service
from cohorts.runs.execution import run_execute_set as run_execute_set_service
from cohorts.runs.execution import run_give_up, run_set_give_up
from datasets import services as dataset_services
from worker import fingerprints, retention
from worker.decorators import soyang_task


def _worker() -> str:
    """The worker process holding the job, recorded on its row."""
    return current_task.request.hostname or ""


# --- counts (cohorts/) ---------------------------------------------------------------------------------------------


@soyang_task("worker.tasks.run_execute", give_up=run_give_up)
def run_execute(*, run_id: int) -> str:
    """On the site's queue: one run of a cohort (count, attrition, demographics)."""
    return run_execute_service(run_id=run_id, worker=_worker())


@soyang_task("worker.tasks.run_execute_set", give_up=run_set_give_up)
def run_execute_set(*, run_ids: list[int]) -> list[str]:
    """On the site's queue: the runs of a set of definitions counted together, in one pass."""
    return run_execute_set_service(run_ids=run_ids, worker=_worker())


@soyang_task("worker.tasks.comparison_execute", give_up=comparison_services.comparison_give_up)
def comparison_execute(*, run_id: int) -> str:
    """On the site's queue: the overlap of a comparison's cohorts at the site, in one counting transaction."""
    return comparison_services.comparison_execute(run_id=run_id, worker=_worker())


# --- the count store of PostgreSQL sites (cohorts/runs/stores.py) ------------------------------------------------


@soyang_task("worker.tasks.count_store_sync", give_up=stores.store_sync_give_up)
def count_store_sync(*, sync_id: int) -> str:
    """On the site's queue: copy the CDM tables counts read into the site's count store."""
    return stores.store_sync_execute(sync_id=sync_id, worker=_worker())


# --- dataset requests (datasets/) ---------------------------------------------------------------------------------


@soyang_task("worker.tasks.datasets_project_site", give_up=dataset_services.projection_give_up)
def datasets_project_site(*, review_id: int) -> str:
    """On the site's queue: the cohort and projected row counts of a dataset request."""
    return dataset_services.projection_execute(review_id=review_id, worker=_worker())


@soyang_task("worker.tasks.datasets_extract_site", give_up=dataset_services.extraction_give_up)
def datasets_extract_site(*, extract_id: int) -> str:
    """On the site's queue: build the de-identified extract of an approved request."""
    return dataset_services.extraction_execute(extract_id=extract_id, worker=_worker())


@soyang_task("worker.tasks.datasets_expire")
def datasets_expire() -> int:
    """Celery beat: delete the files of expired datasets and mark them expired."""
    return dataset_services.requests_expire()


# --- results retention (worker/retention.py) -----------------------------------------------------------------------


@soyang_task("worker.tasks.results_prune")
def results_prune() -> int:
    """Celery beat, on the portal: one prune task on each active site's queue."""
    return retention.results_prune_enqueue()


@soyang_task("worker.tasks.results_prune_site")
def results_prune_site(*, source_id: int) -> str:
    """On the site's queue: delete the rows of the site's cohorts past their retention. Not retried: a prune
    stopped by the site's database leaves the rest unrecorded, and the next beat's prune takes it up."""
    report = retention.results_prune(source_id=source_id)
    if report.busy:
        return "busy"
    if report.error:
        return f"stopped after {len(report.pruned)} of {report.due} cohorts: {report.error}"
    return f"{len(report.pruned)} cohorts, {report.rows} rows"


# --- CDM fingerprints (warehouse/fingerprint.py, worker/fingerprints.py) ------------------------------------------


@soyang_task("worker.tasks.fingerprints_check")
def fingerprints_check() -> int:
    """Celery beat, on the portal: one fingerprint check on each active site's queue."""
    return fingerprints.fingerprint_checks_enqueue()


@soyang_task("worker.tasks.source_fingerprint_check")
def source_fingerprint_check(*, source_id: int) -> str:
    """On the site's queue: read the site's CDM fingerprint and record it (and its change, if any). Not retried:
    the next beat checks again, and until then the site's cached counts simply age out."""
    return stores.site_check(source_id=source_id)


# --- sessions (accounts/) ------------------------------------------------------------------------------------------


@soyang_task("worker.tasks.sessions_clear")
def sessions_clear() -> int:
    """Celery beat, on the portal: delete the sessions that have expired; returns how many there were."""
    return sessions_clear_expired()


# --- vocabulary counts (cohorts/concept_sets) ----------------------------------------------------------------------


@soyang_task("worker.tasks.concept_counts_refresh")
def concept_counts_refresh(*, source_id: int) -> int:
    """On the site's queue: records and persons per standard concept, stored as aggregates in the portal."""
    return concept_counts_refresh_at_site(source_id=source_id)
