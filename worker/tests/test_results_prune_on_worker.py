"""The beat's prune goes the whole way with a real worker process: the portal task puts a prune on the site's
queue, the site's worker deletes the rows of the site's old runs and records them. GiBleed on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from audit.models import AuditEvent
from cohorts.runs.generation import generate_cohort
from cohorts.runs.models import CohortRun
from cohorts.runs.services import run_request_create, site_queue
from jobs.choices import JobState
from worker.tests.helpers import make_source, make_user, oracle_definition, wait_final, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"


def site_rows(cdm, run: CohortRun) -> int:
    engine = cdm.connect()
    try:
        (present,) = engine.fetchone("SELECT to_regclass(%(t)s) IS NOT NULL", {"t": f"{cdm.results_schema}.cohort"})
        if not present:  # counts never create it
            return 0
        (count,) = engine.fetchone(
            f"SELECT COUNT(*) FROM {cdm.results_schema}.cohort WHERE cohort_definition_id = %(id)s", {"id": run.pk}
        )
    finally:
        engine.close()
    return int(count)


def test_the_beat_prune_reaches_the_site_worker_which_deletes_the_rows_of_old_runs(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(f"portal,{site_queue(source.key)}")
    request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
    (run,) = wait_final(request)
    assert run.state == JobState.SUCCEEDED, run.error
    # Counts write no rows now; the rows of a run counted by an earlier version of the worker are what is left.
    assert site_rows(cdm_gibleed_pg, run) == 0
    engine = cdm_gibleed_pg.connect()
    try:
        written = generate_cohort(
            engine,
            definition.latest_version().expression,
            cdm_schema=cdm_gibleed_pg.cdm_schema,
            vocabulary_schema=cdm_gibleed_pg.vocabulary_schema,
            results_schema=cdm_gibleed_pg.results_schema,
            cohort_id=run.pk,
        )
    finally:
        engine.close()
    assert site_rows(cdm_gibleed_pg, run) == written.rows > 0
    # Two days later (the worker's retention is the default, 24 hours).
    CohortRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=2))

    current_app.send_task("worker.tasks.results_prune", queue="portal")

    wait_for(
        lambda: CohortRun.objects.filter(pk=run.pk, rows_pruned_at__isnull=False).exists(),
        timeout=60,
        what="the run's rows to be pruned",
    )
    assert site_rows(cdm_gibleed_pg, run) == 0
    event = AuditEvent.objects.get(action="results_prune", source_key=source.key)
    assert event.detail["runs"] == 1 and event.detail["rows"] == written.rows
    assert event.detail["trigger"] == "schedule"
