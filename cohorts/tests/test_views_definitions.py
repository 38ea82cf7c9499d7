"""Definition pages: who sees which definition, importing ATLAS JSON, the builder, export and sharing.

The standard people (accounts.tests.fixtures): alice owns the project, bob is an approved member, charlie an
approved researcher outside it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.definitions.services import definition_create, definition_share
from cohorts.expression import parse_expression
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.simple_builder import BuilderSpec, RuleSpec, build_expression

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def definition(alice, project) -> CohortDefinition:
    return definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)


def test_list_shows_only_the_definitions_each_person_may_see(alice, bob, charlie, project, bob_member, definition):
    private = definition_create(owner=alice, name="Alice's draft", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)

    def names(user: Any) -> set[str]:
        response = client_for(user).get(reverse("cohorts:definition_list"))
        assert response.status_code == 200
        return {d.name for d in response.context["definitions"]}

    assert names(alice) == {"Type 2 diabetes", "Alice's draft"}
    assert names(bob) == {"Type 2 diabetes"}
    assert names(charlie) == set()
    assert private.name not in client_for(bob).get(reverse("cohorts:definition_list")).content.decode()


def test_list_search_and_project_filter_narrow_the_list(alice, project, definition):
    definition_create(owner=alice, name="Hypertension", expression=EXPRESSION)
    client = client_for(alice)
    found = client.get(reverse("cohorts:definition_list"), {"q": "diab"}).context["definitions"]
    assert [d.name for d in found] == ["Type 2 diabetes"]
    in_project = client.get(reverse("cohorts:definition_list"), {"project": project.pk}).context["definitions"]
    assert [d.name for d in in_project] == ["Type 2 diabetes"]


def test_import_with_an_invalid_expression_shows_the_json_path_and_saves_nothing(alice, project):
    bad = json.loads(json.dumps(EXPRESSION))
    bad["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["CodesetId"] = 7
    response = client_for(alice).post(
        reverse("cohorts:definition_import"),
        {"name": "Broken", "project": project.pk, "json_text": json.dumps(bad)},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CodesetId" in body
    assert "nothing was saved" in body
    assert not CohortDefinition.objects.exists()
    assert not CohortDefinitionVersion.objects.exists()


def test_import_of_text_that_is_not_json_says_where_it_breaks(alice):
    response = client_for(alice).post(reverse("cohorts:definition_import"), {"name": "X", "json_text": '{"a": '})
    assert response.status_code == 400
    assert "This is not JSON" in response.content.decode()
    assert not CohortDefinition.objects.exists()


def test_import_of_a_valid_file_creates_the_definition_owned_by_the_importer(alice, bob, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("cohort.json", json.dumps(EXPRESSION).encode(), content_type="application/json")
    response = client_for(alice).post(
        reverse("cohorts:definition_import"), {"name": "Imported", "project": project.pk, "json_file": upload}
    )
    definition = CohortDefinition.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("cohorts:definition_detail", args=[definition.pk])
    assert definition.owner == alice and definition.project == project
    assert definition.latest_version().expression == EXPRESSION
    assert client_for(alice).get(response["Location"]).status_code == 200
    assert client_for(bob).get(response["Location"]).status_code == 404  # not shared yet


def test_import_into_a_project_the_user_is_not_in_is_refused(charlie, project):
    response = client_for(charlie).post(
        reverse("cohorts:definition_import"),
        {"name": "Sneaky", "project": project.pk, "json_text": json.dumps(EXPRESSION)},
    )
    assert response.status_code == 400
    assert not CohortDefinition.objects.exists()


def test_builder_saves_a_valid_circe_expression(alice, project):
    # The block builder posts the expression it holds; this one is what the old form made for the same input.
    expression = build_expression(
        BuilderSpec(
            entry_domain="condition",
            entry_concept_ids=(201826, 320128),
            age_min=40,
            gender_concept_ids=(8532,),
            rules=(RuleSpec(domain="drug", concept_ids=(1503297,), at_least=2, days_before=180),),
        )
    )
    response = client_for(alice).post(
        reverse("cohorts:builder_create"),
        json.dumps({"name": "Built", "project": project.pk, "expression": expression}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content.decode()[:2000]
    expression = CohortDefinition.objects.get().latest_version().expression
    parsed = parse_expression(expression)
    assert [i.concept_id for i in parsed.concept_sets[0].items] == [201826, 320128]
    assert [r.name for r in parsed.inclusion_rules] == [
        "aged 40 or older, female",
        "at least 2 drug exposure events in the 180 days before",
    ]
    rule = parsed.inclusion_rules[1].expression.criteria_list[0]
    assert (rule.start_window.start.days, rule.start_window.start.coeff) == (180, -1)
    assert (rule.occurrence.type, rule.occurrence.count) == (2, 2)


def test_builder_rejects_a_concept_that_is_not_a_number_and_saves_nothing(alice):
    bad = json.loads(json.dumps(EXPRESSION))
    bad["ConceptSets"][0]["expression"]["items"][0]["concept"]["CONCEPT_ID"] = "diabetes"
    response = client_for(alice).post(
        reverse("cohorts:builder_create"),
        json.dumps({"name": "Bad", "expression": bad}),
        content_type="application/json",
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"].startswith("ConceptSets[0].expression.items[0].concept")
    assert not CohortDefinition.objects.exists()


def test_partners_do_not_create_definitions(alice, project):
    from accounts.choices import Role
    from accounts.tests.factories import UserFactory

    partner = UserFactory(username="pharma", role=Role.PARTNER)
    assert client_for(partner).get(reverse("cohorts:definition_new")).status_code == 404
    assert client_for(partner).get(reverse("cohorts:definition_import")).status_code == 404


def test_detail_shows_the_summary_in_words_and_export_downloads_the_json(alice, definition):
    client = client_for(alice)
    body = client.get(reverse("cohorts:definition_detail", args=[definition.pk])).content.decode()
    assert "the first in the person&#x27;s history" in body or "the first in the person's history" in body
    response = client.get(reverse("cohorts:definition_export", args=[definition.pk]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert json.loads(response.content) == EXPRESSION


@pytest.mark.parametrize("name", ["definition_detail", "definition_export"])
def test_an_outsider_gets_404_as_for_a_missing_definition(charlie, definition, name):
    client = client_for(charlie)
    assert client.get(reverse(f"cohorts:{name}", args=[definition.pk])).status_code == 404
    assert client.get(reverse(f"cohorts:{name}", args=[definition.pk + 1000])).status_code == 404


def test_sharing_with_the_project_lets_members_see_and_is_audited(alice, bob, charlie, project, bob_member, definition):
    url = reverse("cohorts:definition_detail", args=[definition.pk])
    assert client_for(bob).get(url).status_code == 404
    response = client_for(alice).post(reverse("cohorts:definition_share", args=[definition.pk]), {"with_project": "on"})
    assert response.status_code == 302
    assert client_for(bob).get(url).status_code == 200
    assert client_for(charlie).get(url).status_code == 404
    assert AuditEvent.objects.filter(action="definition_share", object_id=str(definition.pk)).exists()


def test_sharing_with_an_outsider_of_the_project_is_refused(alice, charlie, definition):
    client_for(alice).post(reverse("cohorts:definition_share", args=[definition.pk]), {"username": "charlie"})
    assert client_for(charlie).get(reverse("cohorts:definition_detail", args=[definition.pk])).status_code == 404


def test_a_member_who_may_only_view_cannot_share(alice, bob, project, bob_member, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    response = client_for(bob).post(reverse("cohorts:definition_share", args=[definition.pk]), {"with_project": "on"})
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["definition_list", "definition_new", "definition_import"])
def test_the_pages_render_for_a_researcher(alice, project, name):
    response = client_for(alice).get(reverse(f"cohorts:{name}"))
    assert response.status_code == 200
    assert "<script>" not in response.content.decode()  # scripts come from files only (strict CSP later)


def test_home_shows_my_definitions_to_the_owner_and_shared_ones_to_a_member(
    alice, bob, project, bob_member, definition
):
    definition_share(definition=definition, by=alice, to_project=project)
    mine = client_for(alice).get("/")
    assert list(mine.context["my_definitions"]) == [definition]
    assert list(mine.context["projects"]) == [project]
    theirs = client_for(bob).get("/")
    assert list(theirs.context["shared_definitions"]) == [definition]
    assert list(theirs.context["my_definitions"]) == []


def test_home_of_a_steward_links_to_approvals_and_audit(steward):
    body = client_for(steward).get("/").content.decode()
    assert reverse("accounts:approvals") in body
    assert reverse("audit:event_list") in body
