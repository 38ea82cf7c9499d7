"""No released output carries a mark telling a cell hidden as a complement from a genuinely small one: the status
JSON, the API, the run page and every CSV table of a result where complementary suppression did hide a cell.

Such a mark pointed straight at the other hidden cell: with "White <10, Asian <10 (complementary)", Asian is the
large one and White the small one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.runs.selectors import RESULT_TABLES
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics

pytestmark = pytest.mark.django_db


def keys(value: Any) -> Iterator[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


@pytest.fixture
def suppressed(alice: Any, project: Any, source: Any, other_source: Any) -> Any:
    """Two shown sites; at each, one race cell is small and the next smallest is hidden as its complement."""
    project.sources.add(other_source)
    definition = definition_create(owner=alice, name="Mixed", expression=EXPRESSION, project=project)
    return demographics_request(
        definition.latest_version(),
        alice,
        {
            source: raw_demographics(66, race={8527: 50, 8515: 12, 8516: 4}),
            other_source: raw_demographics(45, race={8527: 30, 8515: 11, 0: 4}),
        },
    )


def test_no_complementary_key_anywhere_in_the_status_or_the_api(alice, suppressed):
    client = Client()
    client.force_login(alice)
    for url in (reverse("cohorts:run_status", args=[suppressed.pk]), f"/api/v1/runs/{suppressed.pk}/"):
        result = client.get(url).json()
        assert "merged_demographics" in result
        races = [row["persons"] for site in result["sites"] for row in site["demographics"]["race"]]
        assert sum(1 for persons in races if persons["hidden"]) >= 4  # the complements are hidden
        assert "complementary" not in set(keys(result))
        assert "hidden" not in {persons["display"] for persons in races}  # said "<10", like any hidden cell


def test_no_mark_on_the_page_or_in_any_csv(alice, suppressed):
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("cohorts:run_detail", args=[suppressed.pk])).content.decode()
    assert "complementary" not in page.lower()
    for table in RESULT_TABLES:
        body = client.get(reverse("cohorts:run_table_csv", args=[suppressed.pk, table])).content.decode()
        assert "complementary" not in body.lower() and ",hidden," not in body and "+ hidden" not in body, table
