"""The characterization's percentages and standardized differences are computed from released counts only: the
cohort's shown count over its shown total, the population's shown count over its shown total; a hidden count (at a
site, or a merged one with a hidden part) has no percentage and no difference, so neither tells what it hides. The
population is released like any count (a hidden total releases none of it); merged, it covers the same sites as
the cohort. Results stored before the sites computed the population still read, with percentages of the cohort
only. The CSV writes every figure as a number and leaves a figure that a hidden count would need empty.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.runs.selectors import run_request_result, standardized_difference
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics, unperturbed_key

pytestmark = pytest.mark.django_db

DIABETES, ASTHMA, RARE = 201826, 317009, 440383


def population(persons: int, concepts: dict[int, int], *, men: int = 0) -> dict[str, Any]:
    """A site's population as its worker stores it: ``persons`` in all, ``men`` of them men (50-59), the rest
    women (40-49), and ``concepts`` (concept id → persons) in their last observed year; every cell keyed."""

    def cell(n: int) -> dict[str, int]:
        return {"persons": n, "key": unperturbed_key(n)}

    women = persons - men
    return {
        "definition": "observation-period-last-year",
        "window_days": 365,
        **{"persons": persons, "persons_key": unperturbed_key(persons)},
        "age_pyramid": [
            {"age_group": "40-49", "gender_concept_id": 8532, **cell(women)},
            *([{"age_group": "50-59", "gender_concept_id": 8507, **cell(men)}] if men else []),
        ],
        "gender": [
            {"concept_id": 8532, "name": "FEMALE", **cell(women)},
            *([{"concept_id": 8507, "name": "MALE", **cell(men)}] if men else []),
        ],
        "top": {"conditions": [{"concept_id": c, **cell(n)} for c, n in concepts.items()]},
    }


def characterized(persons: int, top: dict[int, int], site_population: dict[str, Any] | None) -> dict[str, Any]:
    demographics = raw_demographics(persons, top=top)
    demographics["index_lookback_days"] = 365
    if site_population is not None:
        demographics["population"] = site_population
    return demographics


@pytest.fixture
def client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def version(alice: Any, project: Any, other_source: Any) -> Any:
    project.sources.add(other_source)
    return definition_create(owner=alice, name="Characterized", expression=EXPRESSION, project=project).latest_version()


def conditions(demographics: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["concept_id"]: row for row in demographics["top_at_index"]["conditions"]}


def test_the_standardized_difference_of_two_proportions():
    assert standardized_difference(0.5, 0.3) == pytest.approx(0.2 / math.sqrt((0.25 + 0.21) / 2))
    assert standardized_difference(0.1, 0.1) == 0
    assert standardized_difference(0.0, 0.0) == 0 and standardized_difference(1.0, 1.0) == 0
    assert standardized_difference(0.2, 0.6) == pytest.approx(-standardized_difference(0.6, 0.2))


def test_a_site_shows_each_figure_from_its_released_counts(alice, version, source):
    request = demographics_request(
        version,
        alice,
        {source: characterized(80, {DIABETES: 40, ASTHMA: 12}, population(2000, {DIABETES: 300, ASTHMA: 8}))},
    )
    demographics = run_request_result(request=request, role="researcher")["sites"][0]["demographics"]
    total = demographics["persons"]["value"]
    assert demographics["population"]["persons"]["value"] == 2000
    assert demographics["population"]["definition"] == "observation-period-last-year"
    diabetes = conditions(demographics)[DIABETES]
    p1, p2 = diabetes["persons"]["value"] / total, diabetes["population"]["value"] / 2000
    assert diabetes["percent"] == round(100 * p1, 1) == 50.0
    assert diabetes["population_percent"] == round(100 * p2, 1) == 15.0
    assert diabetes["smd"] == round(standardized_difference(p1, p2), 2)
    # A population count under the threshold is hidden like any: no population percentage and no difference.
    asthma = conditions(demographics)[ASTHMA]
    assert asthma["population"]["display"] == "<10" and asthma["population"]["value"] is None
    assert asthma["percent"] == 15.0 and asthma["population_percent"] is None and asthma["smd"] is None
    # The sexes are compared with the population's, each row from its own released counts.
    women = next(row for row in demographics["gender"] if row["concept_id"] == 8532)
    assert (women["percent"], women["population_percent"], women["smd"]) == (100.0, 100.0, 0.0)


def test_a_hidden_bucket_has_no_percentage_and_no_difference(alice, version, source):
    site_population = population(2000, {DIABETES: 300}, men=900)
    request = demographics_request(version, alice, {source: characterized(60, {DIABETES: 30}, site_population)})
    demographics = run_request_result(request=request, role="researcher")["sites"][0]["demographics"]
    for table in ("age_pyramid", "gender", "race", "ethnicity", "index_year"):
        for row in demographics[table]:
            if row["persons"]["hidden"]:
                assert row["percent"] is None and row.get("smd") is None, (table, row)
            else:
                assert row["percent"] is not None, (table, row)
    # The cohort has no man: his bucket is hidden (never "0"), and so are its percentage and difference, while the
    # population's own released share stays beside it.
    men = next(row for row in demographics["gender"] if row["concept_id"] == 8507)
    assert men["persons"]["display"] == "<10" and men["percent"] is None and men["smd"] is None
    assert men["population_percent"] == 45.0


def test_merged_figures_never_come_from_a_hidden_site(alice, version, source, other_source):
    request = demographics_request(
        version,
        alice,
        {
            source: characterized(60, {DIABETES: 30, ASTHMA: 20}, population(2000, {DIABETES: 300, ASTHMA: 90})),
            other_source: characterized(50, {DIABETES: 6, ASTHMA: 25}, population(1500, {DIABETES: 200, ASTHMA: 80})),
        },
    )
    result = run_request_result(request=request, role="researcher")
    merged = result["merged_demographics"]
    assert merged["population"]["persons"]["display"] == f"{merged['population']['persons']['value']:,}"
    top = conditions(merged)
    # Diabetes is under the threshold at the second site: listed there as nothing, so the merged count covers the
    # first site alone and has no percentage, no population and no difference.
    assert top[DIABETES]["persons"]["value"] is None and "not in top" in top[DIABETES]["persons"]["display"]
    assert top[DIABETES]["percent"] is None and top[DIABETES].get("smd") is None
    assert "population" not in top[DIABETES]
    # Asthma is shown at both: its merged figures are those of the merged released counts.
    asthma = top[ASTHMA]
    p1 = asthma["persons"]["value"] / merged["persons"]["value"]
    p2 = asthma["population"]["value"] / merged["population"]["persons"]["value"]
    assert asthma["percent"] == round(100 * p1, 1)
    assert asthma["population_percent"] == round(100 * p2, 1)
    assert asthma["smd"] == round(standardized_difference(p1, p2), 2)
    # A merged bucket with a part hidden at a site ("… + <10") has no percentage either.
    for table in ("age_pyramid", "gender", "race", "ethnicity", "index_year"):
        for row in merged[table]:
            if row["persons"]["hidden"]:
                assert row["percent"] is None and row.get("smd") is None, (table, row)


def test_a_hidden_population_total_releases_no_population(alice, version, source, other_source):
    request = demographics_request(
        version,
        alice,
        {
            source: characterized(60, {ASTHMA: 20}, population(2000, {ASTHMA: 90})),
            other_source: characterized(50, {ASTHMA: 25}, population(7, {ASTHMA: 7})),
        },
    )
    result = run_request_result(request=request, role="researcher")
    by_key = {site["source"]: site["demographics"] for site in result["sites"]}
    assert "population" in by_key[source.key] and "population" not in by_key[other_source.key]
    assert "population" not in conditions(by_key[other_source.key])[ASTHMA]
    assert "population" not in result["merged_demographics"]
    assert "population" not in conditions(result["merged_demographics"])[ASTHMA]


def test_a_result_stored_before_the_population_still_reads(alice, version, source, client):
    old = raw_demographics(40, top={DIABETES: 20})  # as stored before: 30 days, no procedures, no population
    request = demographics_request(version, alice, {source: old})
    demographics = run_request_result(request=request, role="researcher")["sites"][0]["demographics"]
    assert "population" not in demographics and demographics["index_lookback_days"] == 30
    assert conditions(demographics)[DIABETES]["percent"] == 50.0
    assert "smd" not in conditions(demographics)[DIABETES]
    assert client.get(reverse("cohorts:run_detail", args=[request.pk])).status_code == 200
    body = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "top_conditions"])).content.decode()
    header, row = list(csv.reader(io.StringIO(body)))
    assert row[header.index("% of cohort")] == "50.0" and row[header.index("standardized difference")] == ""


def test_the_csv_writes_every_figure_as_a_number(alice, version, source, client):
    request = demographics_request(
        version,
        alice,
        {source: characterized(80, {DIABETES: 40, ASTHMA: 12}, population(2000, {DIABETES: 300, ASTHMA: 8}))},
    )
    body = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "top_conditions"])).content.decode()
    header, *rows = list(csv.reader(io.StringIO(body)))
    assert header == [
        "site",
        "concept_id",
        "name",
        "persons",
        "% of cohort",
        "population persons",
        "% of population",
        "standardized difference",
        "privacy rule",
    ]
    by_concept = {int(row[1]): dict(zip(header, row, strict=True)) for row in rows}
    diabetes = by_concept[DIABETES]
    assert (diabetes["persons"], diabetes["% of cohort"], diabetes["population persons"]) == ("40", "50.0", "300")
    assert diabetes["% of population"] == "15.0"
    assert float(diabetes["standardized difference"]) == round(standardized_difference(0.5, 0.15), 2)
    # The population's hidden count is its text; the figures it would give are empty, never a number.
    asthma = by_concept[ASTHMA]
    assert asthma["population persons"] == "<10"
    assert asthma["% of population"] == "" and asthma["standardized difference"] == ""
    # The tables without the population have the percentage of the cohort only.
    race = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "race"])).content.decode()
    race_header = next(csv.reader(io.StringIO(race)))
    assert race_header == ["site", "concept_id", "name", "persons", "% of cohort", "privacy rule"]
