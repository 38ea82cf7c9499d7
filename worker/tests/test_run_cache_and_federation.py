"""Identical requests reuse results; a reload invalidates them; several sites answer in parallel."""

from __future__ import annotations

import threading

import pytest
from celery import Celery, current_app
from django.db import connection

from cohorts.runs.errors import BrokerUnavailable, RunLimitReached
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.selectors import run_request_result
from cohorts.runs.services import run_request_create, site_queue
from jobs.choices import JobState
from warehouse.services import source_load_omop
from worker.tests.helpers import (
    make_source,
    make_user,
    oracle_definition,
    oracle_expected,
    oracle_released,
    wait_final,
)

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"


def test_identical_request_reuses_the_stored_result_and_a_reload_invalidates_it(
    start_worker, cdm_gibleed_duckdb_private, shared_data_dir, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_duckdb_private)
    alice, bob = make_user(), make_user()
    definition = oracle_definition(oracle_dir, NAME, alice)
    version = definition.latest_version()
    start_worker(site_queue(source.key))
    first = run_request_create(user=alice, version=version, sources=[source])
    (run,) = wait_final(first)
    assert run.state == JobState.SUCCEEDED, run.error

    again = run_request_create(user=bob, version=version, sources=[source])
    assert list(again.runs.all()) == [run]  # answered at once from the stored result
    assert run_request_result(request=again, role="researcher")["finished"]

    source_load_omop(source=source, directory=shared_data_dir / "omop" / "gibleed")
    source.refresh_from_db()
    after_reload = run_request_create(user=alice, version=version, sources=[source])
    (new_run,) = wait_final(after_reload)
    assert new_run.pk != run.pk
    assert new_run.state == JobState.SUCCEEDED
    assert new_run.result["persons"] == run.result["persons"]


def test_two_identical_requests_arriving_together_run_once(cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg)
    users = [make_user() for _ in range(2)]
    definition = oracle_definition(oracle_dir, NAME, users[0])
    version = definition.latest_version()
    barrier = threading.Barrier(2)
    made: list[RunRequest] = []

    def ask(user) -> None:
        try:
            barrier.wait()
            made.append(run_request_create(user=user, version=version, sources=[source]))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 2
    assert CohortRun.objects.filter(source=source).count() == 1
    assert {r.runs.get().pk for r in made} == {CohortRun.objects.get(source=source).pk}


def test_one_request_on_three_sites_merges_counts_and_reports_the_failed_site(
    start_worker, cdm_gibleed_pg, cdm_gibleed_duckdb_private, oracle_dir
) -> None:
    pg = make_source(cdm_gibleed_pg)
    duck = make_source(cdm_gibleed_duckdb_private)
    broken = make_source(cdm_gibleed_pg, results_schema="gibleed_results", cdm_schema="missing_cdm")
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(",".join(site_queue(s.key) for s in (pg, duck, broken)), concurrency=3)
    request = run_request_create(user=user, version=definition.latest_version(), sources=[pg, duck, broken])
    runs = wait_final(request)
    states = {run.source.key: run.state for run in runs}
    assert states == {pg.key: JobState.SUCCEEDED, duck.key: JobState.SUCCEEDED, broken.key: JobState.FAILED}, [
        run.error for run in runs
    ]

    merged = run_request_result(request=request, role="researcher")
    expected = oracle_expected(oracle_dir, NAME)["persons"]
    assert merged["finished"]
    assert merged["sites_answered"] == 2
    # The total of two sites on the same data is one cell: twice the persons, the sum of both sites' cell keys
    # (each site keys its persons with its own secret), perturbed once.
    assert merged["total"]["value"] == oracle_released(oracle_dir, NAME, pg, duck)
    by_key = {site["source"]: site for site in merged["sites"]}
    assert by_key[pg.key]["persons"]["value"] == oracle_released(oracle_dir, NAME, pg)
    assert by_key[duck.key]["persons"]["value"] == oracle_released(oracle_dir, NAME, duck)
    assert abs(by_key[pg.key]["persons"]["value"] - expected) <= 3
    assert by_key[broken.key]["state"] == JobState.FAILED
    assert by_key[broken.key]["error"]

    partner_view = run_request_result(request=request, role="partner")
    assert partner_view["total"]["value"] % 10 == 0


def test_more_concurrent_requests_than_the_limit_are_refused_with_a_clear_message(
    cdm_gibleed_pg, oracle_dir, settings
) -> None:
    settings.SOYANG_MAX_CONCURRENT_RUNS = 2
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    other = oracle_definition(oracle_dir, "pl_10606", user)
    run_request_create(user=user, version=definition.latest_version(), sources=[source])
    run_request_create(user=user, version=other.latest_version(), sources=[source], kind="attrition")
    with pytest.raises(RunLimitReached, match="the limit is 2"):
        run_request_create(user=user, version=definition.latest_version(), sources=[source], kind="demographics")
    assert RunRequest.objects.filter(requested_by=user).count() == 2


def test_a_dead_broker_refuses_the_request_at_once_and_writes_nothing(cdm_gibleed_pg, oracle_dir, monkeypatch) -> None:
    # Celery prefers the CELERY_BROKER_URL environment variable to any app's own broker: without it here.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    # A Celery app of its own whose broker is a closed port, made current for this test only: the real app's
    # connection pools are left untouched for the tests that follow.
    live = current_app._get_current_object()
    dead = Celery("soyang-dead-broker", broker="redis://127.0.0.1:1/0")
    dead.conf.broker_connection_timeout = 1
    dead.set_current()
    try:
        with pytest.raises(BrokerUnavailable, match="not reachable"):
            run_request_create(user=user, version=definition.latest_version(), sources=[source])
    finally:
        live.set_current()
    assert not RunRequest.objects.exists()
    assert not CohortRun.objects.exists()
