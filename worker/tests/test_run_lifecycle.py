"""A count runs on the site's own worker process and comes back with the command line's numbers."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from cohorts.runs.choices import RunKind
from cohorts.runs.selectors import run_request_result
from cohorts.runs.services import run_request_create, site_queue
from jobs.choices import JobState
from worker.tests.helpers import make_source, make_user, oracle_definition, oracle_expected, wait_final

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"


def test_count_goes_from_queued_to_succeeded_on_the_site_worker_with_the_command_line_count(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    request = run_request_create(user=user, version=definition.latest_version(), sources=[source], kind=RunKind.COUNT)
    run = request.runs.get()
    assert run.state == JobState.QUEUED  # nothing consumes site.<key> yet: no request thread runs a query

    worker = start_worker(site_queue(source.key))
    (run,) = wait_final(request)
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.attempts == 1
    assert run.progress_step == run.progress_total > 2  # step k of n over the cohort's statements
    assert run.started_at <= run.finished_at
    assert run.worker == worker.name
    assert run.result["persons"] == oracle_expected(oracle_dir, NAME)["persons"]

    out = StringIO()
    call_command(
        "run_cohort", str(oracle_dir / "cohorts" / f"{NAME}.json"), "--source", source.key, "--count", stdout=out
    )
    command_line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert command_line["persons"] == run.result["persons"]
    assert [step["persons"] for step in command_line["attrition"]] == [
        step["persons"] for step in run.result["attrition"]
    ]
    # The count path: no row was made, by the worker or by the command, and both say which engine answered.
    assert command_line["rows"] is None and run.result["rows"] is None
    assert command_line["engine"] == run.result["engine"] == "postgresql"


def test_demographics_run_returns_aggregates_with_small_cells_hidden(start_worker, cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg)
    user = make_user()
    definition = oracle_definition(oracle_dir, NAME, user)
    start_worker(site_queue(source.key))
    request = run_request_create(
        user=user, version=definition.latest_version(), sources=[source], kind=RunKind.DEMOGRAPHICS
    )
    (run,) = wait_final(request)
    assert run.state == JobState.SUCCEEDED, run.error
    demographics = run.result["demographics"]
    assert demographics["persons"] == run.result["persons"]
    assert sum(cell["persons"] for cell in demographics["gender"]) == run.result["persons"]
    assert sum(cell["persons"] for cell in demographics["age_pyramid"]) == run.result["persons"]

    shown = run_request_result(request=request, role="researcher")
    for cell in shown["sites"][0]["demographics"]["age_pyramid"]:
        assert cell["persons"]["hidden"] or cell["persons"]["value"] == 0 or cell["persons"]["value"] >= 10
    hidden_cells = [c for c in shown["sites"][0]["demographics"]["age_pyramid"] if c["persons"]["hidden"]]
    assert len(hidden_cells) != 1  # complementary suppression: never exactly one hidden bucket under a shown total
