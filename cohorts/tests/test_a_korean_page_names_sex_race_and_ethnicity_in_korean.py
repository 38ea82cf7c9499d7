"""A page shows the fixed demographic categories by their concept ids in the reader's language: 8507 reads 남성
and 8532 여성 on a Korean page, whatever the site's vocabulary calls them; the API and the CSV keep the English
names, which scripts and spreadsheets match on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_with_demographics(alice: Any, project: Any, source: Any) -> Any:
    definition = definition_create(owner=alice, name="Both sexes", expression=EXPRESSION, project=project)
    return demographics_request(
        definition.latest_version(), alice, {source: raw_demographics(60, race={8527: 30, 8515: 30})}
    )


def _client(user: Any, language: str) -> Client:
    client = Client(headers={"accept_language": language})
    client.force_login(user)
    return client


def _names(demographics: dict[str, Any]) -> dict[str, dict[int, str]]:
    out = {table: {row["concept_id"]: row["name"] for row in demographics[table]} for table in ("gender", "race")}
    out["pyramid"] = {row["gender_concept_id"]: row["gender"] for row in demographics["age_pyramid"]}
    return out


def test_the_korean_status_page_names_the_categories_in_korean(alice, request_with_demographics):
    status = _client(alice, "ko").get(reverse("cohorts:run_status", args=[request_with_demographics.pk])).json()
    names = _names(status["sites"][0]["demographics"])
    assert names["gender"] == {8507: "남성", 8532: "여성", 0: "기타 또는 알 수 없음"}
    assert names["pyramid"] == names["gender"]
    assert names["race"][8527] == "백인" and names["race"][8515] == "아시아인"
    english = _client(alice, "en").get(reverse("cohorts:run_status", args=[request_with_demographics.pk])).json()
    assert _names(english["sites"][0]["demographics"])["gender"] == {
        8507: "Male",
        8532: "Female",
        0: "Other or unknown",
    }
    # Only the names change: every count is the same in both languages.
    assert json.dumps(status["sites"][0]["demographics"]["persons"]) == json.dumps(
        english["sites"][0]["demographics"]["persons"]
    )


def test_the_csv_keeps_the_english_names_whatever_the_language(alice, request_with_demographics):
    body = (
        _client(alice, "ko")
        .get(reverse("cohorts:run_table_csv", args=[request_with_demographics.pk, "gender"]))
        .content.decode()
    )
    assert "Male" in body and "Female" in body and "남성" not in body
