"""A count cell of the concept pages says which of its states it is in, in English and Korean: a number, "0" for a
concept the site counted and found none of, "hidden (<10)" under the threshold, "not counted yet" for a site that
has not counted, "n/a (non-standard)" for a source code; one legend per table. The numbers are what
``disclosure`` releases (``protect``), nothing more.

People (accounts.tests.fixtures): bob is an analyst of project P on the GiBleed site (concept_fixtures)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from cohorts.tests.concept_fixtures import condition_cells, released
from cohorts.tests.expressions import ASTHMA, GI_BLEED, GI_BLEED_ICD10
from warehouse.models import Concept, ConceptCount

pytestmark = pytest.mark.django_db


def _client(user: Any, language: str = "en") -> Client:
    client = Client(headers={"accept-language": language})
    client.force_login(user)
    return client


def _entry(user: Any, concept_id: int) -> dict[str, Any]:
    data = _client(user).get(reverse("cohorts:concept_search_json"), {"q": str(concept_id)}).json()
    return next(r for r in data["results"] if r["concept_id"] == concept_id)["counts"][0]


def _absent_standard_condition(site: Any) -> int:
    counted = set(ConceptCount.objects.filter(source=site).values_list("concept_id", flat=True))
    absent = (
        Concept.objects.filter(standard_concept="S", domain_id="Condition", invalid_reason="")
        .exclude(concept_id__in=counted)
        .order_by("concept_id")
        .first()
    )
    assert absent is not None
    return absent.concept_id


def test_each_state_of_a_count_is_told_apart(members: dict[str, Any], site: Any, cdm_gibleed_pg: Any) -> None:
    bob = members["bob"]
    records, persons = condition_cells(cdm_gibleed_pg, site, GI_BLEED)
    shown = _entry(bob, GI_BLEED)
    assert (shown["records"], shown["persons"]) == (
        released(records, site, Role.RESEARCHER),
        released(persons, site, Role.RESEARCHER),
    )
    assert shown["records_text"] == f"{shown['records']:,}" and not shown["hidden"]

    hidden = _entry(bob, ASTHMA)
    assert (hidden["records"], hidden["persons"]) == ("<10", "<10")
    assert (hidden["records_text"], hidden["persons_text"], hidden["hidden"]) == ("hidden (<10)", "hidden (<10)", True)

    absent = _absent_standard_condition(site)
    assert condition_cells(cdm_gibleed_pg, site, absent)[1][0] == 0  # truly none at the site
    zero = _entry(bob, absent)
    assert (zero["counted"], zero["records"], zero["persons"], zero["records_text"]) == (True, 0, 0, "0")

    source_code = _entry(bob, GI_BLEED_ICD10)
    assert (source_code["records"], source_code["records_text"]) == (None, "n/a (non-standard)")

    ConceptCount.objects.filter(source=site).delete()  # the site has not counted (yet)
    for concept_id in (GI_BLEED, absent):
        never = _entry(bob, concept_id)
        assert (never["counted"], never["records"], never["persons"]) == (False, None, None)
        assert never["records_text"] == "not counted yet"


def test_the_search_page_shows_the_states_and_one_legend_in_english_and_korean(
    members: dict[str, Any], site: Any
) -> None:
    absent = Concept.objects.get(concept_id=_absent_standard_condition(site))
    for language, words in (
        ("en", ("hidden (&lt;10) / hidden (&lt;10)", "“0”: the site counted and found none", "n/a (non-standard)")),
        ("ko", ("숨김(&lt;10) / 숨김(&lt;10)", "“0”: 기관이 세었고 없었습니다", "해당 없음(비표준)")),
    ):
        client = _client(members["bob"], language)
        body = client.get(reverse("cohorts:concept_search_page"), {"q": "asthma"}).content.decode()
        assert words[0] in body, language
        assert body.count("concepts-legend") == 1
        assert words[1] in body
        body = client.get(reverse("cohorts:concept_search_page"), {"q": "K92.2"}).content.decode()
        assert words[2] in body, language
        body = client.get(reverse("cohorts:concept_search_page"), {"q": str(absent.concept_id)}).content.decode()
        assert '<td class="num concepts-count" title="' in body and ">0 / 0</td>" in body
        detail = client.get(reverse("cohorts:concept_detail_page", kwargs={"concept_id": ASTHMA})).content.decode()
        assert words[0].split(" / ")[0] in detail and words[1] in detail
