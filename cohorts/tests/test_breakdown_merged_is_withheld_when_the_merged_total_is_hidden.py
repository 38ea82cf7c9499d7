"""The demographics merged over several sites are released only when their merged total is shown: with a site whose
count is hidden, the merged total is "the others + <10", and a merged bucket "+ <10" would tell where that site's
few persons are. The result says so (``merged_breakdown_withheld``), and so do the page and the CSV.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics, released_sum

pytestmark = pytest.mark.django_db

MERGED_WITHHELD = "No breakdown of all sites together: a site's count is under its threshold"


@pytest.fixture
def client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def request_on_two_sites(alice: Any, project: Any, source: Any, other_source: Any, persons: tuple[int, int]) -> Any:
    project.sources.add(other_source)
    definition = definition_create(owner=alice, name="Two sites", expression=EXPRESSION, project=project)
    return demographics_request(
        definition.latest_version(),
        alice,
        {source: raw_demographics(persons[0]), other_source: raw_demographics(persons[1], race={8515: persons[1]})},
    )


def test_a_hidden_site_withholds_the_merged_breakdown(alice, project, source, other_source, client):
    request = request_on_two_sites(alice, project, source, other_source, (60, 6))
    status = client.get(reverse("cohorts:run_status", args=[request.pk])).json()
    assert status["total"]["display"] == "60 + <10"
    assert status["merged_breakdown_withheld"] is True and "merged_demographics" not in status
    # The shown site keeps its own breakdown; the hidden one has none.
    by_key = {site["source"]: site for site in status["sites"]}
    assert "demographics" in by_key[source.key] and "demographics" not in by_key[other_source.key]
    page = client.get(reverse("cohorts:run_detail", args=[request.pk])).content.decode()
    assert MERGED_WITHHELD + "." in page
    body = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "race"])).content.decode()
    merged_rows = [line for line in body.splitlines() if line.startswith("all sites,")]
    # site, concept, name, persons, % of cohort: all empty, then the reason.
    assert merged_rows == ["all sites,,,,," + MERGED_WITHHELD]


def test_shown_sites_get_the_merged_breakdown(alice, project, source, other_source, client):
    request = request_on_two_sites(alice, project, source, other_source, (60, 16))
    status = client.get(reverse("cohorts:run_status", args=[request.pk])).json()
    assert status["merged_breakdown_withheld"] is False
    merged = status["merged_demographics"]
    assert merged["persons"]["display"] == str(released_sum(60, 16))
    race = {row["concept_id"]: row["persons"]["display"] for row in merged["race"]}
    assert race == {8527: "60 + <10", 8516: "2 × <10", 8515: "16 + <10", 0: "2 × <10"}
    page = client.get(reverse("cohorts:run_detail", args=[request.pk])).content.decode()
    assert "No breakdown" not in page
