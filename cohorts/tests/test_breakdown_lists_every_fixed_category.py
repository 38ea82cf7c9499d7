"""A released breakdown lists every category of a fixed scheme, in a fixed order, whether or not it has members:
every age band by every sex, every sex, race and ethnicity of the fixed lists (others folded into "Other or
unknown"), every five-year period of the index year. An empty bucket is hidden exactly like a small one, so
neither the presence, nor the order, nor the text of a bucket tells which categories have members.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.runs.breakdowns import AGE_GROUPS, ETHNICITIES, GENDERS, INDEX_YEARS, RACES
from cohorts.runs.selectors import run_request_result
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics

pytestmark = pytest.mark.django_db

TABLES = ("age_pyramid", "gender", "race", "ethnicity", "index_year")


#: What a released row holds besides its labels: its count and the figures computed from released counts.
FIGURES = ("persons", "percent", "population", "population_percent", "smd")


def labels(demographics: dict[str, Any], table: str) -> list[tuple[Any, ...]]:
    return [tuple(v for k, v in row.items() if k not in FIGURES) for row in demographics[table]]


@pytest.fixture
def two_cohorts(alice: Any, project: Any, source: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two shown cohorts with members in different buckets (one has a race outside the fixed list)."""
    definition = definition_create(owner=alice, name="Two", expression=EXPRESSION, project=project)
    version = definition.latest_version()
    women = demographics_request(version, alice, {source: raw_demographics(40, race={8527: 25, 8515: 15})})
    men = demographics_request(
        version, alice, {source: raw_demographics(55, race={8516: 40, 8527: 10, 8657: 5}, gender_concept_id=8507)}
    )
    return tuple(
        run_request_result(request=request, role="researcher")["sites"][0]["demographics"] for request in (women, men)
    )


def test_both_cohorts_list_the_same_buckets_in_the_same_order(two_cohorts):
    women, men = two_cohorts
    for table in TABLES:
        assert labels(women, table) == labels(men, table), table
    assert [row["age_group"] for row in women["age_pyramid"]] == [g for g in AGE_GROUPS for _ in GENDERS]
    assert len(women["age_pyramid"]) == len(AGE_GROUPS) * 3 == 30
    assert [row["concept_id"] for row in women["gender"]] == [8507, 8532, 0]
    assert [row["concept_id"] for row in women["race"]] == [concept_id for concept_id, _ in RACES]
    assert [row["concept_id"] for row in women["ethnicity"]] == [concept_id for concept_id, _ in ETHNICITIES]
    assert [row["year"] for row in women["index_year"]] == list(INDEX_YEARS)
    assert INDEX_YEARS[0] == "<1980" and "2020-2024" in INDEX_YEARS and INDEX_YEARS[-1] == "2030+"


def test_empty_and_small_buckets_read_the_same(two_cohorts):
    women, men = two_cohorts
    race = {row["concept_id"]: row["persons"]["display"] for row in men["race"]}
    # 8657 is not in the fixed list: its 5 persons are "Other or unknown", hidden; White (10) is hidden with it so
    # that 55 - 40 cannot give it; both read exactly like the empty Asian bucket.
    assert race == {8527: "<10", 8516: "40", 8515: "<10", 0: "<10"}
    genders = {row["concept_id"]: row["persons"] for row in women["gender"]}
    assert genders[8532]["display"] == "40"
    assert genders[8507] == genders[0] == {"value": None, "display": "<10", "hidden": True}
    shown = [row for table in TABLES for row in women[table] if not row["persons"]["hidden"]]
    assert all(row["persons"]["value"] >= 10 for row in shown)


def test_the_csv_lists_every_bucket_too(alice, project, source):
    definition = definition_create(owner=alice, name="One", expression=EXPRESSION, project=project)
    request = demographics_request(definition.latest_version(), alice, {source: raw_demographics(40)})
    client = Client()
    client.force_login(alice)
    body = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "index_year"])).content.decode()
    assert [line.split(",")[1] for line in body.splitlines()[1:]] == list(INDEX_YEARS)
    pyramid = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "age_pyramid"])).content.decode()
    assert len(pyramid.splitlines()) == 1 + 30
