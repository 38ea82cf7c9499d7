"""Vocabulary search and concept set pages: counts per site through the privacy rules of each role, outsiders
without counts, hierarchy, concept set CRUD and permissions, and clear refusals of bad input.

People (accounts.tests.fixtures): alice owns project P (on GiBleed), bob is an analyst of P, the partner a
partner viewer of P, charlie an approved researcher of no project.

Every count shown is perturbed with its cell key (records and persons are two cells); the expected numbers are
computed from the CDM and the site's secret (``concept_fixtures.condition_cells`` and ``released``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from audit.models import AuditEvent
from cohorts.concept_sets.models import ConceptSet
from cohorts.tests.concept_fixtures import condition_cells, released
from cohorts.tests.expressions import ASTHMA, CHILDHOOD_ASTHMA, GI_BLEED, GI_BLEED_ICD10, ITEMS
from disclosure.selectors import rule_for
from warehouse.models import ConceptCount

pytestmark = pytest.mark.django_db

VIRAL_SINUSITIS = 40481087  # 17,268 records of 2,686 persons: a record count far from its person count


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _search(user: Any, **params: Any) -> Any:
    return _client(user).get(reverse("cohorts:concept_search_json"), params)


def _counts(user: Any, concept_id: int) -> list[dict[str, Any]]:
    data = _search(user, q=str(concept_id)).json()
    hit = next(r for r in data["results"] if r["concept_id"] == concept_id)
    return hit["counts"]


# --- search ------------------------------------------------------------------------------------------------------


def test_search_json_follows_the_builders_contract(members: dict[str, Any], site: Any, cdm_gibleed_pg: Any) -> None:
    response = _search(members["bob"], q="gastrointestinal hemorrhage", standard="S", limit=5)
    assert response.status_code == 200
    data = response.json()
    assert data["query"] == "gastrointestinal hemorrhage"
    assert data["total_shown"] == len(data["results"]) >= 1
    first = data["results"][0]
    assert first["concept_id"] == GI_BLEED
    assert set(first) >= {
        "concept_id",
        "concept_name",
        "domain_id",
        "vocabulary_id",
        "concept_class_id",
        "standard_concept",
        "concept_code",
        "invalid_reason",
        "counts",
    }
    records, persons = condition_cells(cdm_gibleed_pg, site, GI_BLEED)
    assert (records[0], persons[0]) == (479, 479)
    shown_records, shown_persons = released(records, site, Role.RESEARCHER), released(persons, site, Role.RESEARCHER)
    assert first["counts"] == [
        {
            "source": "gibleed",
            "source_name": "GiBleed hospital",
            "counted": True,
            "records": shown_records,
            "persons": shown_persons,
            "records_text": f"{shown_records:,}",
            "persons_text": f"{shown_persons:,}",
            "hidden": False,
            "rule": rule_for(source=site, role=Role.RESEARCHER).describe(),
        }
    ]
    assert first["counts"][0]["rule"].startswith("perturbed (at most ±")


def test_a_researcher_sees_counts_perturbed_with_their_cell_keys_and_a_small_count_as_under_ten(
    members: dict[str, Any], site: Any, cdm_gibleed_pg: Any
) -> None:
    for concept_id in (GI_BLEED, VIRAL_SINUSITIS):
        records, persons = condition_cells(cdm_gibleed_pg, site, concept_id)
        counts = _counts(members["bob"], concept_id)[0]
        assert (counts["records"], counts["persons"]) == (
            released(records, site, Role.RESEARCHER),
            released(persons, site, Role.RESEARCHER),
        )
    small = _counts(members["bob"], ASTHMA)[0]
    assert (small["records"], small["persons"]) == ("<10", "<10")


def test_a_partner_sees_counts_perturbed_then_rounded_to_ten(
    members: dict[str, Any], site: Any, cdm_gibleed_pg: Any
) -> None:
    records, persons = condition_cells(cdm_gibleed_pg, site, VIRAL_SINUSITIS)
    counts = _counts(members["partner"], VIRAL_SINUSITIS)[0]
    assert (counts["records"], counts["persons"]) == (
        released(records, site, Role.PARTNER),
        released(persons, site, Role.PARTNER),
    )
    assert counts["rule"] == rule_for(source=site, role=Role.PARTNER).describe()
    assert counts["rule"].endswith("counts under 10 hidden, rounded to the nearest 10")
    assert _counts(members["partner"], ASTHMA)[0]["persons"] == "<10"


def test_the_same_concept_shows_the_same_numbers_after_the_site_counts_again(
    members: dict[str, Any], site: Any
) -> None:
    from cohorts.concept_sets.counts import concept_counts_refresh_at_site

    before = _counts(members["bob"], VIRAL_SINUSITIS)
    concept_counts_refresh_at_site(source_id=site.pk)
    assert _counts(members["bob"], VIRAL_SINUSITIS) == before


def test_a_count_stored_without_its_cell_key_is_not_released(members: dict[str, Any], site: Any) -> None:
    ConceptCount.objects.filter(source=site, concept_id=GI_BLEED).update(record_key=None)
    counts = _counts(members["bob"], GI_BLEED)[0]
    assert counts["records"] == "not released (count again)"
    assert isinstance(counts["persons"], int)


def test_an_outsider_finds_concepts_but_sees_no_counts_of_sites_they_may_not_query(
    members: dict[str, Any], charlie: Any
) -> None:
    assert _counts(charlie, GI_BLEED) == []
    page = _client(charlie).get(reverse("cohorts:concept_search_page"), {"q": "hemorrhage"})
    assert page.status_code == 200
    assert "GiBleed hospital" not in page.content.decode()


def test_a_concept_never_counted_at_a_site_shows_no_number(members: dict[str, Any], site: Any) -> None:
    counts = _counts(members["bob"], GI_BLEED_ICD10)  # non-standard: counts are of standard concepts only
    assert counts == [
        {
            "source": "gibleed",
            "source_name": "GiBleed hospital",
            "counted": True,
            "records": None,
            "persons": None,
            "records_text": "n/a (non-standard)",
            "persons_text": "n/a (non-standard)",
            "hidden": False,
            "rule": rule_for(source=site, role=Role.RESEARCHER).describe(),
        }
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "type a concept name, code or id"),
        ({"q": "asthma", "limit": "5000"}, "limit must be between 1 and 100"),
        ({"q": "asthma", "offset": "-1"}, "offset must be between"),
        ({"q": "asthma", "standard": "yes"}, "standard must be"),
    ],
)
def test_bad_search_input_is_a_clear_400(members: dict[str, Any], params: dict[str, str], message: str) -> None:
    response = _search(members["bob"], **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_search_page_shows_domain_vocabulary_code_and_counts(
    members: dict[str, Any], site: Any, cdm_gibleed_pg: Any
) -> None:
    records, persons = condition_cells(cdm_gibleed_pg, site, GI_BLEED)
    shown = f"{released(records, site, Role.RESEARCHER)} / {released(persons, site, Role.RESEARCHER)}"
    response = _client(members["bob"]).get(reverse("cohorts:concept_search_page"), {"q": "hemorrhage"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Gastrointestinal hemorrhage" in body and "K92.2" in body and "ICD10CM" in body
    assert shown in body


def test_concept_json_has_parents_children_descendants_total_and_mappings(members: dict[str, Any]) -> None:
    data = _client(members["bob"]).get(reverse("cohorts:concept_detail_json", kwargs={"concept_id": ASTHMA})).json()
    assert data["concept_id"] == ASTHMA and data["domain_id"] == "Condition"
    children = {c["concept_id"]: c for c in data["descendants"]}
    assert children[CHILDHOOD_ASTHMA]["min_levels_of_separation"] == 1
    assert data["descendants_total"] >= len(children)
    mapped = _client(members["bob"]).get(reverse("cohorts:concept_detail_json", kwargs={"concept_id": GI_BLEED}))
    assert [m["concept_id"] for m in mapped.json()["mapped_from"]] == [GI_BLEED_ICD10]


def test_an_unknown_concept_id_answers_404_with_a_message(members: dict[str, Any]) -> None:
    response = _client(members["bob"]).get(reverse("cohorts:concept_detail_json", kwargs={"concept_id": 1}))
    assert response.status_code == 404
    assert "No concept with id 1" in response.json()["error"]


def test_the_concept_page_links_up_and_down_the_hierarchy(members: dict[str, Any]) -> None:
    response = _client(members["bob"]).get(reverse("cohorts:concept_detail_page", kwargs={"concept_id": ASTHMA}))
    body = response.content.decode()
    assert response.status_code == 200
    assert reverse("cohorts:concept_detail_page", kwargs={"concept_id": CHILDHOOD_ASTHMA}) in body


# --- concept sets ------------------------------------------------------------------------------------------------


def _create(user: Any, project: Any, items: list[dict[str, Any]] | None = None, name: str = "Asthma") -> Any:
    body = {"name": name, "project": project.pk, "expression": {"items": ITEMS if items is None else items}}
    return _client(user).post(reverse("cohorts:concept_set_new"), json.dumps(body), content_type="application/json")


def test_an_analyst_saves_a_concept_set_with_concept_fields_filled_from_the_vocabulary(
    members: dict[str, Any], project_p: Any
) -> None:
    response = _create(members["bob"], project_p)
    assert response.status_code == 201
    saved = ConceptSet.objects.get(pk=response.json()["id"])
    first = saved.expression["items"][0]
    assert first["concept"]["CONCEPT_NAME"] == "Asthma"
    assert first["concept"]["VOCABULARY_ID"] == "SNOMED"
    assert (first["includeDescendants"], first["isExcluded"], first["includeMapped"]) == (True, False, False)
    assert AuditEvent.objects.filter(action="concept_set_create", object_id=str(saved.pk)).exists()
    exported = _client(members["alice"]).get(reverse("cohorts:concept_set_json", kwargs={"pk": saved.pk})).json()
    assert exported == {"id": saved.pk, "name": "Asthma", "expression": saved.expression}


def test_project_members_view_owners_and_analysts_change_partners_only_view(
    members: dict[str, Any], project_p: Any
) -> None:
    pk = _create(members["bob"], project_p).json()["id"]
    url = reverse("cohorts:concept_set_edit", kwargs={"pk": pk})
    body = json.dumps({"name": "Asthma (renamed)", "expression": {"items": ITEMS[:1]}})
    assert _client(members["partner"]).get(url).status_code == 200
    assert _client(members["partner"]).post(url, body, content_type="application/json").status_code == 403
    assert _client(members["alice"]).post(url, body, content_type="application/json").status_code == 200
    assert ConceptSet.objects.get(pk=pk).name == "Asthma (renamed)"
    assert _create(members["partner"], project_p).status_code == 404


def test_others_concept_sets_answer_404_everywhere(members: dict[str, Any], project_p: Any, charlie: Any) -> None:
    pk = _create(members["bob"], project_p).json()["id"]
    outsider = _client(charlie)
    for name in ("cohorts:concept_set_edit", "cohorts:concept_set_json"):
        assert outsider.get(reverse(name, kwargs={"pk": pk})).status_code == 404
    assert outsider.post(reverse("cohorts:concept_set_delete", kwargs={"pk": pk})).status_code == 404
    assert "Asthma" not in outsider.get(reverse("cohorts:concept_set_list")).content.decode()
    assert ConceptSet.objects.filter(pk=pk).exists()


def test_only_the_creator_deletes_a_concept_set(members: dict[str, Any], project_p: Any) -> None:
    pk = _create(members["bob"], project_p).json()["id"]
    url = reverse("cohorts:concept_set_delete", kwargs={"pk": pk})
    assert _client(members["alice"]).post(url).status_code == 403
    assert _client(members["bob"]).post(url).status_code == 302
    assert not ConceptSet.objects.filter(pk=pk).exists()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"concept": {"CONCEPT_ID": 1}}], "Unknown concept ids: 1"),
        ([{"concept": {"CONCEPT_ID": "asthma"}}], "numeric CONCEPT_ID"),
        ([{"concept": {"CONCEPT_ID": ASTHMA}, "isExcluded": "yes"}], "isExcluded must be true or false"),
        ([{"concept": {"CONCEPT_ID": ASTHMA}}, {"concept": {"CONCEPT_ID": ASTHMA}}], "in the set twice"),
    ],
)
def test_a_bad_concept_set_is_refused_and_nothing_is_saved(
    members: dict[str, Any], project_p: Any, items: list[dict[str, Any]], message: str
) -> None:
    response = _create(members["bob"], project_p, items)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not ConceptSet.objects.exists()


def test_resolve_previews_the_size_and_first_concepts_with_exclusions_applied(members: dict[str, Any]) -> None:
    response = _client(members["bob"]).post(
        reverse("cohorts:concept_set_resolve"),
        json.dumps({"expression": {"items": ITEMS}}),
        content_type="application/json",
    )
    data = response.json()
    ids = [c["concept_id"] for c in data["concepts"]]
    assert response.status_code == 200
    assert ASTHMA in ids and CHILDHOOD_ASTHMA not in ids
    assert data["size"] == len(ids) >= 1
    without_exclusion = _client(members["bob"]).post(
        reverse("cohorts:concept_set_resolve"),
        json.dumps({"expression": {"items": ITEMS[:1]}}),
        content_type="application/json",
    )
    assert without_exclusion.json()["size"] == data["size"] + 1


def test_the_editor_page_carries_its_configuration_without_inline_script(
    members: dict[str, Any], project_p: Any
) -> None:
    pk = _create(members["bob"], project_p).json()["id"]
    body = _client(members["bob"]).get(reverse("cohorts:concept_set_edit", kwargs={"pk": pk})).content.decode()
    assert 'id="concept-set-config" type="application/json"' in body
    assert "js/concept_sets.js" in body
    assert "onclick" not in body and "style=" not in body
