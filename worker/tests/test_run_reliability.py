"""Runs survive a killed worker, can be cancelled mid-query, and time out with a clear message.

A query is held "in the middle" for real: the test takes an exclusive lock on a CDM table the cohort query
reads, so the worker's statement waits inside the database until the lock is released.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg2
import pytest

from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun
from cohorts.runs.services import run_request_cancel, run_request_create, site_queue
from jobs.choices import JobState
from worker.tests.helpers import make_source, make_user, oracle_definition, oracle_expected, wait_final, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"


@contextlib.contextmanager
def table_locked(cdm, table: str = "observation_period") -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(cdm.url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {cdm.cdm_schema}.{table} IN ACCESS EXCLUSIVE MODE")
        yield connection
    finally:
        connection.rollback()
        connection.close()


def _waiting_on_lock(lock_holder) -> bool:
    with lock_holder.cursor() as cursor:
        # Statistics views are snapshotted per transaction, and the lock holder stays in one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def _cohort_rows(cdm, run: CohortRun) -> tuple[int, int]:
    """Rows (and distinct rows) of the run's id in the results table; none when counts never created it."""
    engine = cdm.connect()
    try:
        (present,) = engine.fetchone("SELECT to_regclass(%(t)s) IS NOT NULL", {"t": f"{cdm.results_schema}.cohort"})
        if not present:
            return 0, 0
        total, distinct = engine.fetchone(
            f"SELECT count(*), count(DISTINCT (subject_id, cohort_start_date)) FROM {cdm.results_schema}.cohort "
            "WHERE cohort_definition_id = %(id)s",
            {"id": run.pk},
        )
    finally:
        engine.close()
    return int(total), int(distinct)


def test_worker_killed_mid_query_leaves_the_run_to_another_worker_with_exactly_one_result(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    with table_locked(cdm_gibleed_pg) as holder:
        first = start_worker(site_queue(source.key))
        request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
        run = request.runs.get()
        wait_for(lambda: CohortRun.objects.get(pk=run.pk).state == JobState.RUNNING, what="the run to start")
        wait_for(lambda: _waiting_on_lock(holder), what="the query to wait inside the database")
        first.kill()
        second = start_worker(site_queue(source.key))
    (run,) = wait_final(request, timeout=120)
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.attempts == 2
    assert run.worker == second.name
    assert run.result["persons"] == oracle_expected(oracle_dir, NAME)["persons"]
    # Counts write no cohort rows: neither the killed worker nor the second one left any.
    total, distinct = _cohort_rows(cdm_gibleed_pg, run)
    assert total == distinct == 0 and run.result["rows"] is None
    assert CohortRun.objects.filter(cache_key=run.cache_key).count() == 1


def test_cancel_mid_query_stops_the_statement_and_leaves_the_results_schema_clean(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(site_queue(source.key))
    with table_locked(cdm_gibleed_pg) as holder:
        request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
        run = request.runs.get()
        wait_for(lambda: _waiting_on_lock(holder), what="the query to wait inside the database")
        asked = time.monotonic()
        run_request_cancel(request=request, user=user)
        wait_for(
            lambda: CohortRun.objects.get(pk=run.pk).state == JobState.CANCELLED,
            timeout=10,
            interval=0.05,
            what="the run to be cancelled",
        )
        latency = time.monotonic() - asked
        assert not _waiting_on_lock(holder), "the statement must be cancelled on the database, not abandoned"
    run.refresh_from_db()
    assert run.finished_at is not None
    assert _cohort_rows(cdm_gibleed_pg, run) == (0, 0)
    print(f"cancel latency {latency:.2f} s")


def test_cancel_of_a_queued_run_is_immediate_and_the_worker_never_runs_it(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
    run_request_cancel(request=request, user=user)
    run = request.runs.get()
    assert run.state == JobState.CANCELLED
    start_worker(site_queue(source.key))
    time.sleep(2)
    run.refresh_from_db()
    assert run.state == JobState.CANCELLED
    assert run.attempts == 0


def test_statement_timeout_fails_the_run_with_a_clear_message(start_worker, cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg, statement_timeout_seconds=1)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(site_queue(source.key))
    with table_locked(cdm_gibleed_pg):
        request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
        (run,) = wait_final(request, timeout=30)
    assert run.state == JobState.FAILED
    assert "longer than the site's limit of 1 seconds" in run.error
    assert _cohort_rows(cdm_gibleed_pg, run) == (0, 0)


def test_a_query_error_fails_the_run_at_once_without_retrying(start_worker, cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg, cdm_schema="no_such_schema")
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(site_queue(source.key))
    request = run_request_create(user=user, version=definition.latest_version(), sources=[source], kind=RunKind.COUNT)
    (run,) = wait_final(request, timeout=30)
    assert run.state == JobState.FAILED
    assert run.attempts == 1
    assert run.error


def test_a_locked_site_database_is_retried_with_backoff_until_it_answers(
    start_worker, cdm_gibleed_duckdb_private, oracle_dir
) -> None:
    from warehouse.engines import connect

    source = make_source(cdm_gibleed_duckdb_private)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    # This process holds the DuckDB file open for writing: the worker cannot open it (a transient failure).
    holder = connect("duckdb", cdm_gibleed_duckdb_private.url)
    try:
        start_worker(site_queue(source.key))
        request = run_request_create(user=user, version=definition.latest_version(), sources=[source])
        run = request.runs.get()
        wait_for(lambda: CohortRun.objects.get(pk=run.pk).attempts >= 2, timeout=30, what="a retry")
        assert not CohortRun.objects.get(pk=run.pk).is_final
    finally:
        holder.close()
    (run,) = wait_final(request, timeout=90)
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.result["persons"] == oracle_expected(oracle_dir, NAME)["persons"]
