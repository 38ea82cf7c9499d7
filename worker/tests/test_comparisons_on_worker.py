"""A comparison the whole way with a real worker: chosen on the definitions list, computed at the site in one
task, each combination the persons the oracle's cohorts share (set operations on Circe's own rows), each cohort's
total its own count, and the page, status and CSV showing them protected."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.runs.comparison_services import comparison_cancel, comparison_create
from cohorts.runs.models import Comparison, ComparisonRun
from cohorts.runs.overlap import all_masks
from cohorts.runs.services import site_queue
from jobs.choices import FINAL_STATES, JobState
from worker.tests.helpers import (
    make_running_project,
    make_source,
    make_user,
    oracle_definition,
    oracle_persons,
    wait_for,
)
from worker.tests.test_run_reliability import _waiting_on_lock, table_locked

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["h01_celecoxib_new_users_custom_era", "h04_gibleed_censored_by_acetaminophen", "pl_22168"]


def test_a_comparison_chosen_on_the_list_counts_what_the_oracles_cohorts_share(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    researcher = make_user()
    project = make_running_project(investigator=researcher, sources=[source], title="Overlap study")
    definitions = [oracle_definition(oracle_dir, name, researcher) for name in NAMES]
    for definition in definitions:
        definition.project = project
        definition.save(update_fields=["project"])
    worker = start_worker(site_queue(source.key))
    client = Client()
    client.force_login(researcher)

    listing = client.get(reverse("cohorts:definition_list")).content.decode()
    assert "Compare the selected" in listing
    chosen = client.get(reverse("cohorts:comparison_new"), {"definitions": [d.pk for d in definitions]})
    assert chosen.status_code == 200 and source.key in chosen.content.decode()
    response = client.post(
        reverse("cohorts:comparison_new"), {"definitions": [d.pk for d in definitions], "sources": [source.pk]}
    )
    assert response.status_code == 302
    comparison = Comparison.objects.get(requested_by=researcher)
    assert response["Location"] == reverse("cohorts:comparison_detail", args=[comparison.pk])

    run = wait_for(
        lambda: ComparisonRun.objects.filter(comparison=comparison, state__in=FINAL_STATES).first(),
        timeout=120,
        what="the comparison to finish",
    )
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.worker == worker.name
    persons = [oracle_persons(oracle_dir, name) for name in NAMES]
    stored = {item["mask"]: item["persons"] for item in run.result["combinations"]}
    assert sorted(stored) == sorted(all_masks(3))
    for mask in all_masks(3):
        inside = set.intersection(*(persons[i] for i in range(3) if mask & (1 << i)))
        outside = set().union(*(persons[i] for i in range(3) if not mask & (1 << i)))
        assert stored[mask] == len(inside - outside), mask
    assert [c["persons"] for c in run.result["cohorts"]] == [len(p) for p in persons]
    assert run.result["union"]["persons"] == len(set().union(*persons))
    assert "subject" not in str(run.result) and "person_id" not in str(run.result)

    status = client.get(reverse("cohorts:comparison_status", args=[comparison.pk])).json()
    assert status["finished"] and [c["name"] for c in status["cohorts"]] == NAMES
    (site,) = status["sites"]
    assert site["state"] == "succeeded" and not site["union"]["hidden"]
    assert len(site["combinations"]) == 7
    page = client.get(reverse("cohorts:comparison_detail", args=[comparison.pk]))
    assert page.status_code == 200 and "js/comparison.js" in page.content.decode()
    body = client.get(reverse("cohorts:comparison_csv", args=[comparison.pk])).content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    combos = [row for row in rows if row["row"] == "combination"]
    assert len(combos) == 7
    for row, cell in zip(combos, site["combinations"], strict=True):
        assert row["persons"] == (str(cell["value"]) if cell["value"] is not None else cell["display"])


def test_a_comparison_cancelled_while_queued_ends_cancelled_and_frees_its_place(cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg)
    researcher = make_user()
    project = make_running_project(investigator=researcher, sources=[source], title="Cancelled overlap")
    versions = []
    for name in NAMES[:2]:
        definition = oracle_definition(oracle_dir, name, researcher)
        definition.project = project
        definition.save(update_fields=["project"])
        versions.append(definition.latest_version())
    comparison = comparison_create(user=researcher, versions=versions, sources=[source])
    client = Client()
    client.force_login(researcher)
    response = client.post(reverse("cohorts:comparison_cancel", args=[comparison.pk]), HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["cancelled"]
    assert ComparisonRun.objects.get(comparison=comparison).state == JobState.CANCELLED
    again = client.post(reverse("cohorts:comparison_cancel", args=[comparison.pk]), HTTP_ACCEPT="application/json")
    assert again.status_code == 200


def _comparison_on(cdm: Any, oracle_dir: Any, title: str) -> tuple[Any, Any, Comparison]:
    source = make_source(cdm)
    researcher = make_user()
    project = make_running_project(investigator=researcher, sources=[source], title=title)
    versions = []
    for name in NAMES[:2]:
        definition = oracle_definition(oracle_dir, name, researcher)
        definition.project = project
        definition.save(update_fields=["project"])
        versions.append(definition.latest_version())
    return source, researcher, comparison_create(user=researcher, versions=versions, sources=[source])


def test_cancel_mid_query_stops_the_comparisons_statement_on_the_database(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    with table_locked(cdm_gibleed_pg) as holder:
        source, researcher, comparison = _comparison_on(cdm_gibleed_pg, oracle_dir, "Cancelled mid-query")
        start_worker(site_queue(source.key))
        wait_for(lambda: _waiting_on_lock(holder), what="the comparison's query to wait inside the database")
        comparison_cancel(comparison=comparison, user=researcher)
        run = wait_for(
            lambda: ComparisonRun.objects.filter(comparison=comparison, state=JobState.CANCELLED).first(),
            timeout=10,
            interval=0.05,
            what="the comparison to be cancelled",
        )
        assert not _waiting_on_lock(holder), "the statement must be cancelled on the database, not abandoned"
    assert run.result is None and run.finished_at is not None


def test_a_worker_killed_mid_query_leaves_the_comparison_to_another_with_one_result(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    with table_locked(cdm_gibleed_pg) as holder:
        source, _, comparison = _comparison_on(cdm_gibleed_pg, oracle_dir, "Killed mid-query")
        first = start_worker(site_queue(source.key))
        wait_for(lambda: _waiting_on_lock(holder), what="the comparison's query to wait inside the database")
        first.kill()
        second = start_worker(site_queue(source.key))
    run = wait_for(
        lambda: ComparisonRun.objects.filter(comparison=comparison, state__in=FINAL_STATES).first(),
        timeout=120,
        what="the comparison to finish",
    )
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.attempts == 2 and run.worker == second.name
    persons = [oracle_persons(oracle_dir, name) for name in NAMES[:2]]
    stored = {item["mask"]: item["persons"] for item in run.result["combinations"]}
    assert stored == {1: len(persons[0] - persons[1]), 2: len(persons[1] - persons[0]), 3: len(persons[0] & persons[1])}
