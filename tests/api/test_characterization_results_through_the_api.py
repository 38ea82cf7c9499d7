"""A characterization read through the API has the page's figures: each row's percentage of the cohort and, for
the sexes, age groups and top concepts, the site population's count, percentage and standardized difference, all
from released counts (null where a count they need is hidden), and the population's total and definition; the
CSV of a domain lists them as numbers. The partner reads them from its rounded counts."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.test import Client
from rest_framework.test import APIClient

from cohorts.runs.selectors import standardized_difference
from cohorts.tests.runs import demographics_request, raw_demographics, unperturbed_key
from tests.world import World

pytestmark = pytest.mark.django_db
API = "/api/v1"
DIABETES = 201826


def _population(persons: int, diabetes: int) -> dict:
    return {
        "definition": "observation-period-last-year",
        "window_days": 365,
        "persons": persons,
        "persons_key": unperturbed_key(persons),
        "age_pyramid": [{"age_group": "40-49", "gender_concept_id": 8532, "persons": persons, "key": 0}],
        "gender": [{"concept_id": 8532, "name": "FEMALE", "persons": persons, "key": unperturbed_key(persons)}],
        "top": {"conditions": [{"concept_id": DIABETES, "persons": diabetes, "key": unperturbed_key(diabetes)}]},
    }


def test_the_api_gives_the_characterizations_figures(api_world: World, api_client: Callable[[str], APIClient]) -> None:
    demographics = raw_demographics(120, top={DIABETES: 60})
    demographics.update(index_lookback_days=365, population=_population(3000, 600))
    request = demographics_request(
        api_world.P["definition"].latest_version(), api_world.users["member"], {api_world.P["source"]: demographics}
    )
    body = api_client("member").get(f"{API}/runs/{request.pk}/")
    assert body.status_code == 200, body.content
    site = body.json()["sites"][0]["demographics"]
    assert site["population"] == {
        "persons": {"value": 3000, "display": "3,000", "hidden": False},
        "definition": "observation-period-last-year",
        "window_days": 365,
    }
    (diabetes,) = site["top_at_index"]["conditions"]
    assert (diabetes["percent"], diabetes["population"]["value"], diabetes["population_percent"]) == (50.0, 600, 20.0)
    assert diabetes["smd"] == round(standardized_difference(0.5, 0.2), 2)
    assert {row["concept_id"]: row["percent"] for row in site["gender"]} == {8507: None, 8532: 100.0, 0: None}

    # The partner's counts are rounded to 10 on this site; its figures come from those rounded counts.
    partner = api_client("partner").get(f"{API}/runs/{request.pk}/").json()["sites"][0]["demographics"]
    (rounded,) = partner["top_at_index"]["conditions"]
    assert rounded["persons"]["value"] == 60 and partner["persons"]["value"] == 120
    assert rounded["percent"] == 50.0 and rounded["population_percent"] == 20.0

    # The page's CSV (a browser session) holds the same figures.
    browser = Client()
    browser.force_login(api_world.users["member"])
    body = browser.get(f"/cohorts/runs/{request.pk}/top_conditions.csv")
    rows = list(csv.DictReader(io.StringIO(body.content.decode())))
    assert [(r["persons"], r["% of cohort"], r["population persons"], r["% of population"]) for r in rows] == [
        ("60", "50.0", "600", "20.0")
    ]
