"""A cohort whose count is hidden gets no breakdown at all — no per-rule counts, no attrition steps, no
demographics, no top concepts — on the run page, in the API and in every CSV table; each says so instead.

Even a breakdown made of "<10" cells would list which buckets the few persons fall in (age, sex, race, year,
conditions): a profile of fewer than 10 persons.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.runs.selectors import RESULT_TABLES
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics

pytestmark = pytest.mark.django_db

NO_BREAKDOWN = "No breakdown: the cohort's count is under the site's threshold"


@pytest.fixture
def hidden_count(alice: Any, project: Any, source: Any) -> Any:
    definition = definition_create(owner=alice, name="Rare", expression=EXPRESSION, project=project)
    return demographics_request(
        definition.latest_version(), alice, {source: raw_demographics(7, race={8515: 4, 8516: 3}, top={201826: 7})}
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_status_and_the_api_release_the_hidden_count_and_nothing_under_it(alice, hidden_count):
    client = client_for(alice)
    for url in (reverse("cohorts:run_status", args=[hidden_count.pk]), f"/api/v1/runs/{hidden_count.pk}/"):
        result = client.get(url).json()
        (site,) = result["sites"]
        assert site["persons"] == {"value": None, "display": "<10", "hidden": True}
        assert site["breakdown_withheld"] is True
        assert site["inclusion_rules"] == [] and site["attrition"] == []
        assert "demographics" not in site and "merged_demographics" not in result
        # No trace of the buckets, the rules or the conditions of the few persons.
        text = json.dumps(result)
        for leaked in ("8515", "8516", "201826", "aged 40", "entry events", "40-49", "2020"):
            assert leaked not in text, leaked


def test_the_run_page_says_there_is_no_breakdown(alice, hidden_count, source):
    body = client_for(alice).get(reverse("cohorts:run_detail", args=[hidden_count.pk])).content.decode()
    assert f"No breakdown for {source.name} ({source.key}): the cohort's count is under the site's threshold." in body


def test_every_csv_table_says_no_breakdown_and_holds_no_number(alice, hidden_count):
    client = client_for(alice)
    for table in RESULT_TABLES:
        body = client.get(reverse("cohorts:run_table_csv", args=[hidden_count.pk, table])).content.decode()
        lines = body.splitlines()[1:]
        if table == "sites":
            assert lines[0].split(",")[2] == "<10"
            continue
        (line,) = lines
        assert NO_BREAKDOWN in line, table
        assert not any(char.isdigit() for char in line.replace("perturbed (at most ±3), counts under 10 hidden", "")), (
            line
        )


def test_a_shown_cohort_keeps_its_rules_attrition_and_demographics(alice, project, source):
    definition = definition_create(owner=alice, name="Common", expression=EXPRESSION, project=project)
    request = demographics_request(definition.latest_version(), alice, {source: raw_demographics(70)})
    (site,) = client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).json()["sites"]
    assert site["breakdown_withheld"] is False
    assert [step["display"] for step in site["attrition"]] == ["73", "70"]
    assert [rule["display"] for rule in site["inclusion_rules"]] == ["70"]
    assert site["demographics"]["persons"]["display"] == "70"
