"""The block builder's pages and JSON endpoints: saving makes versions, invalid input saves nothing and says where,
every oracle ATLAS definition survives load-and-save unchanged, and only those who may change a definition edit it.

People (accounts.tests.fixtures): alice owns the project, bob is an approved member, charlie is outside it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from accounts.tests.factories import UserFactory, make_member
from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.definitions.services import definition_create, definition_share
from cohorts.tests.conftest import oracle_manifest
from cohorts.tests.expressions import EXPRESSION

pytestmark = pytest.mark.django_db

ORACLE_NAMES = [entry["name"] for entry in oracle_manifest()]
CONFIG = re.compile(r'<script id="builder-config" type="application/json">(.*?)</script>', re.S)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json")


def page_config(response: Any) -> dict[str, Any]:
    """The configuration the page hands to cohort_builder.js, read from the HTML as the browser reads it."""
    match = CONFIG.search(response.content.decode())
    assert match, "the builder page has no builder-config json_script"
    return json.loads(match.group(1))


@pytest.fixture
def definition(alice, project) -> CohortDefinition:
    return definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)


@pytest.fixture
def partner(project, alice, steward) -> Any:
    partner = UserFactory(username="pharma", role=Role.PARTNER)
    make_member(project=project, user=partner, owner=alice, steward=steward)
    return partner


def test_the_new_definition_page_starts_from_an_empty_entry_event_without_inline_script(alice, project):
    response = client_for(alice).get(reverse("cohorts:definition_new"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>" not in body and "onclick" not in body and 'style="' not in body
    config = page_config(response)
    assert config["definition"] is None
    assert config["expression"]["PrimaryCriteria"]["CriteriaList"] == [
        {"ConditionOccurrence": {"CodesetId": 0, "First": True}}
    ]
    assert config["projects"] == [{"id": project.pk, "title": project.title}]
    assert config["initial"]["sentences"]["entry"].startswith("A person enters the cohort")


def test_saving_a_new_definition_creates_it_with_its_first_version_in_the_project(alice, project, source):
    source.fingerprint = "f" * 64  # loaded: only sites with data are offered for counting
    source.save()
    response = post_json(
        client_for(alice),
        reverse("cohorts:builder_create"),
        {"name": "T2DM", "project": project.pk, "description": "built", "expression": EXPRESSION},
    )
    assert response.status_code == 201, response.content
    definition = CohortDefinition.objects.get()
    assert (definition.name, definition.owner, definition.project) == ("T2DM", alice, project)
    assert definition.latest_version().expression == EXPRESSION
    data = response.json()
    assert data["definition"] == {
        "id": definition.pk,
        "name": "T2DM",
        "description": "built",
        "project": project.pk,
        "version": 1,
    }
    assert data["urls"]["edit"] == reverse("cohorts:definition_edit", args=[definition.pk])
    assert data["urls"]["count"] == reverse("cohorts:builder_count", args=[definition.pk])
    assert data["sources"] == [{"id": source.pk, "label": f"{source.name} ({source.key})"}]


def test_an_invalid_expression_comes_back_with_its_path_and_block_and_nothing_is_saved(alice, project, definition):
    bad = copy.deepcopy(EXPRESSION)
    bad["InclusionRules"] = [
        {
            "name": "broken window",
            "expression": {
                "Type": "ALL",
                "CriteriaList": [
                    {
                        "Criteria": {"DrugExposure": {"CodesetId": 0}},
                        "StartWindow": {"Start": {"Days": "soon", "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}},
                        "Occurrence": {"Type": 2, "Count": 1},
                    }
                ],
            },
        }
    ]
    client = client_for(alice)
    for url, extra in (
        (reverse("cohorts:builder_create"), {"name": "Broken", "project": project.pk}),
        (reverse("cohorts:builder_save", args=[definition.pk]), {}),
    ):
        response = post_json(client, url, {"expression": bad, **extra})
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["path"] == "InclusionRules[0].expression.CriteriaList[0].StartWindow.Start.Days"
        assert error["block"] == "rule-0"
        assert "integer" in error["message"]
    assert CohortDefinition.objects.count() == 1
    assert CohortDefinitionVersion.objects.count() == 1


def test_a_body_that_is_not_json_or_has_no_expression_is_refused_with_a_message(alice, definition):
    client = client_for(alice)
    url = reverse("cohorts:builder_save", args=[definition.pk])
    response = client.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "The request is not JSON."
    assert post_json(client, url, {"expression": []}).status_code == 400
    assert CohortDefinitionVersion.objects.count() == 1


def test_a_new_definition_needs_a_name_and_a_project_of_ones_own(alice, charlie, project):
    url = reverse("cohorts:builder_create")
    response = post_json(client_for(alice), url, {"name": " ", "expression": EXPRESSION})
    assert response.status_code == 400
    assert response.json()["errors"][0]["block"] == "name"
    response = post_json(client_for(charlie), url, {"name": "X", "project": project.pk, "expression": EXPRESSION})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Choose a project you work in."
    assert not CohortDefinition.objects.exists()


def test_each_save_of_an_edit_is_a_new_version_with_its_note_and_is_audited(alice, definition):
    changed = copy.deepcopy(EXPRESSION)
    changed["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 365
    client = client_for(alice)
    url = reverse("cohorts:builder_save", args=[definition.pk])
    first = post_json(client, url, {"expression": changed, "note": "a year of history"})
    second = post_json(client, url, {"expression": changed})
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["definition"]["version"] == 3
    versions = list(definition.versions.order_by("number").values_list("number", "note", "author__username"))
    assert versions == [
        (1, "created", "alice"),
        (2, "a year of history", "alice"),
        (3, "saved in the builder", "alice"),
    ]
    assert definition.latest_version().expression == changed
    assert AuditEvent.objects.filter(action="definition_save", object_id=str(definition.pk)).count() == 2


@pytest.mark.parametrize("name", ORACLE_NAMES)
def test_an_oracle_atlas_definition_loaded_in_the_builder_and_saved_unchanged_is_identical(
    alice, project, oracle_dir: Path, name: str
):
    original = json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text())
    definition = definition_create(owner=alice, name=name, expression=original, project=project)
    client = client_for(alice)
    page = client.get(reverse("cohorts:definition_edit", args=[definition.pk]))
    assert page.status_code == 200
    loaded = page_config(page)["expression"]
    response = post_json(client, reverse("cohorts:builder_save", args=[definition.pk]), {"expression": loaded})
    assert response.status_code == 201, response.content
    saved = definition.latest_version()
    assert saved.number == 2
    # Compared as JSON values: the portal DB stores versions as jsonb, which does not keep key order anyway.
    assert saved.expression == original
    assert saved.expression_hash == definition.versions.get(number=1).expression_hash


def test_describe_gives_the_sentences_the_extras_and_the_errors_and_writes_nothing(alice, definition):
    expression = copy.deepcopy(EXPRESSION)
    expression["AdditionalCriteria"] = {"Type": "ALL", "CriteriaList": []}
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["ConditionType"] = [{"CONCEPT_ID": 1}]
    response = post_json(client_for(alice), reverse("cohorts:builder_describe"), {"expression": expression})
    assert response.status_code == 200
    data = response.json()
    assert data["valid"] is True and data["errors"] == []
    assert data["sentences"]["entry"].startswith("A person enters the cohort at the earliest of these events")
    assert [e["path"] for e in data["extras"]] == [
        "AdditionalCriteria",
        "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.ConditionType",
    ]
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["CodesetId"] = 9
    data = post_json(client_for(alice), reverse("cohorts:builder_describe"), {"expression": expression}).json()
    assert data["valid"] is False
    assert data["errors"][0]["block"] == "entry"
    assert CohortDefinitionVersion.objects.count() == 1


def test_others_definitions_answer_404_to_the_builder_as_missing_ones_do(charlie, definition):
    client = client_for(charlie)
    for pk in (definition.pk, definition.pk + 1000):
        assert client.get(reverse("cohorts:definition_edit", args=[pk])).status_code == 404
        assert (
            post_json(client, reverse("cohorts:builder_save", args=[pk]), {"expression": EXPRESSION}).status_code == 404
        )
    assert CohortDefinitionVersion.objects.count() == 1


def test_a_member_who_sees_a_shared_definition_may_not_edit_it(alice, bob, project, bob_member, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    client = client_for(bob)
    assert client.get(reverse("cohorts:definition_detail", args=[definition.pk])).status_code == 200
    assert client.get(reverse("cohorts:definition_edit", args=[definition.pk])).status_code == 403
    response = post_json(client, reverse("cohorts:builder_save", args=[definition.pk]), {"expression": EXPRESSION})
    assert response.status_code == 403
    assert CohortDefinitionVersion.objects.count() == 1


def test_a_partner_neither_builds_nor_edits(alice, project, partner, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    client = client_for(partner)
    assert client.get(reverse("cohorts:definition_new")).status_code == 404
    assert (
        post_json(client, reverse("cohorts:builder_create"), {"name": "P", "expression": EXPRESSION}).status_code == 404
    )
    assert post_json(client, reverse("cohorts:builder_describe"), {"expression": EXPRESSION}).status_code == 404
    assert client.get(reverse("cohorts:definition_edit", args=[definition.pk])).status_code == 403
    assert CohortDefinition.objects.count() == 1


def test_the_detail_page_links_the_owner_to_the_builder(alice, bob, project, bob_member, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    edit = reverse("cohorts:definition_edit", args=[definition.pk])
    assert edit in client_for(alice).get(reverse("cohorts:definition_detail", args=[definition.pk])).content.decode()
    assert edit not in client_for(bob).get(reverse("cohorts:definition_detail", args=[definition.pk])).content.decode()
