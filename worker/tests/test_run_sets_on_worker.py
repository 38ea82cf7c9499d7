"""A set of definitions counted together, the whole way with a real worker: chosen on the definitions list,
counted on the site in one pass (one task, the concept sets resolved once), each number Circe's."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.services import run_set_create, site_queue
from jobs.choices import JobState
from worker.tests.helpers import (
    make_running_project,
    make_source,
    make_user,
    oracle_definition,
    oracle_expected,
    wait_final,
)

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["pl_3385", "pl_10606", "h04_gibleed_censored_by_acetaminophen", "h12_long_observation_children"]


def test_a_set_chosen_on_the_list_is_counted_in_one_pass_with_circes_numbers(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    source = make_source(cdm_gibleed_pg)
    researcher = make_user()
    project = make_running_project(investigator=researcher, sources=[source], title="Set study")
    definitions = [oracle_definition(oracle_dir, name, researcher) for name in NAMES]
    for definition in definitions:
        definition.project = project
        definition.save(update_fields=["project"])
    worker = start_worker(site_queue(source.key))
    client = Client()
    client.force_login(researcher)

    listing = client.get(reverse("cohorts:definition_list")).content.decode()
    assert "Count the selected together" in listing
    chosen = client.get(reverse("cohorts:run_set_new"), {"definitions": [d.pk for d in definitions]})
    assert chosen.status_code == 200 and source.key in chosen.content.decode()
    response = client.post(
        reverse("cohorts:run_set_new"),
        {"definitions": [d.pk for d in definitions], "sources": [source.pk], "kind": "count"},
    )
    assert response.status_code == 302
    ids = [int(i) for i in re.findall(r"requests=(\d+)", response["Location"])]
    assert len(ids) == len(NAMES)
    requests = [RunRequest.objects.get(pk=pk) for pk in ids]
    for name, request in zip(NAMES, requests, strict=True):
        (run,) = wait_final(request)
        assert run.state == JobState.SUCCEEDED, run.error
        assert run.result["persons"] == oracle_expected(oracle_dir, name)["persons"]
        assert run.worker == worker.name
    # One pass: the set's concept sets were resolved in one query before the counts.
    assert "concept sets of 4 definitions resolved at once" in worker.log()

    page = client.get(response["Location"]).content.decode()
    assert page.count('href="/cohorts/runs/') == len(NAMES) and "±3" in page


def test_a_set_is_refused_whole_when_a_site_is_not_ready(cdm_gibleed_pg, oracle_dir) -> None:
    source = make_source(cdm_gibleed_pg, fingerprint="")
    researcher = make_user()
    definition = oracle_definition(oracle_dir, "pl_3385", researcher)
    with pytest.raises(Exception, match="has no data yet"):
        run_set_create(user=researcher, versions=[definition.latest_version()], sources=[source])
    assert not CohortRun.objects.exists() and not RunRequest.objects.exists()


def test_a_stranger_cannot_open_a_set_of_someone_elses_definitions(cdm_gibleed_pg, oracle_dir) -> None:
    owner = make_user()
    definition = oracle_definition(oracle_dir, "pl_3385", owner)
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(reverse("cohorts:run_set_new"), {"definitions": [definition.pk]}).status_code == 404
    assert stranger.get(reverse("cohorts:run_set_new"), {"definitions": ["x"]}).status_code == 404
