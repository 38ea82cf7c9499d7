"""The browser's count flow end to end: build a definition in the builder page, press Count, poll status.json
while the site's real worker process runs it, and get the same number as generating the cohort directly."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from cohorts.definitions.models import CohortDefinition
from cohorts.runs.services import site_queue
from cohorts.tests.simple_builder import BuilderSpec, RuleSpec, build_expression
from worker.tests.helpers import generated_released, make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

OSTEOARTHRITIS = 80180
ACETAMINOPHEN = 1125315


def test_a_count_started_from_the_browser_finishes_with_generate_cohorts_number(start_worker, cdm_gibleed_pg) -> None:
    source = make_source(cdm_gibleed_pg)
    admin = make_user(role=Role.ADMIN)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=[source],
        title="Osteoarthritis and analgesics",
        created_by=admin,
    )
    client = Client()
    client.force_login(researcher)

    # What the builder page posts: the Circe expression it holds (here the same one the simple builder made).
    expression = build_expression(
        BuilderSpec(
            entry_domain="condition",
            entry_concept_ids=(OSTEOARTHRITIS,),
            age_min=40,
            rules=(RuleSpec(domain="drug", concept_ids=(ACETAMINOPHEN,), at_least=2, days_before=3650),),
        )
    )
    response = client.post(
        reverse("cohorts:builder_create"),
        json.dumps({"name": "Osteoarthritis after acetaminophen", "project": project.pk, "expression": expression}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content.decode()[:3000]
    definition = CohortDefinition.objects.get(owner=researcher)

    start_worker(site_queue(source.key))
    response = client.post(
        reverse("cohorts:run_create", args=[definition.pk]),
        {"sources": [source.pk], "kind": "count"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    status_url = response.json()["status_url"]

    seen_states: set[str] = set()
    deadline = time.monotonic() + 90
    while True:
        status = client.get(status_url).json()
        seen_states.update(site["state"] for site in status["sites"])
        if status["finished"]:
            break
        assert time.monotonic() < deadline, f"not finished: {status}"
        time.sleep(0.5)

    (site,) = status["sites"]
    assert site["state"] == "succeeded", site["error"]
    # The count the portal releases for the cohort generated here with the site's keys (shown as a number).
    truth, expected = generated_released(
        cdm_gibleed_pg.engine, definition.latest_version().expression, cdm_gibleed_pg, source, cohort_id=990_001
    )
    assert abs(expected - truth) <= 3
    assert site["persons"] == {"value": expected, "display": f"{expected:,}", "hidden": False}
    assert status["total"]["value"] == expected
    assert "succeeded" in seen_states

    page = client.get(reverse("cohorts:run_detail", args=[status["request"]]))
    assert page.status_code == 200
    csv_body = client.get(reverse("cohorts:run_table_csv", args=[status["request"], "sites"])).content.decode()
    assert f"{expected:,}" in csv_body
