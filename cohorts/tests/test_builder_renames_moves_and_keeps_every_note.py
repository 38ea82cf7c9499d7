"""In the builder's edit mode the owner renames, re-describes and moves a definition under the rules of creation (a
project of one's own; the project it is in may be kept), in one transaction and audited; a save that only renames
makes no version; moving takes back shares outside the new project. Every version keeps its note, the first too,
and the versions page shows each.

People (accounts.tests.fixtures): alice owns the project, bob is an approved member, charlie is outside it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.permissions import user_can
from accounts.tests.factories import make_member, make_project
from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create, definition_share
from cohorts.tests.expressions import EXPRESSION

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json")


@pytest.fixture
def definition(alice, project) -> CohortDefinition:
    return definition_create(
        owner=alice, name="Type 2 diabetes", description="first draft", expression=EXPRESSION, project=project
    )


@pytest.fixture
def alices_other_project(alice, steward, source) -> Any:
    return make_project(principal_investigator=alice, created_by=steward, sources=[source], title="Kidney outcomes")


@pytest.fixture
def charlies_project(charlie, steward, source) -> Any:
    return make_project(principal_investigator=charlie, created_by=steward, sources=[source], title="Not alice's")


def save(client: Client, definition: CohortDefinition, **body: Any) -> Any:
    return post_json(client, reverse("cohorts:builder_save", args=[definition.pk]), {"expression": EXPRESSION, **body})


def test_the_edit_page_offers_the_name_description_and_project(alice, project, definition):
    page = client_for(alice).get(reverse("cohorts:definition_edit", args=[definition.pk]))
    body = page.content.decode()
    assert 'id="builder-name"' in body and 'id="builder-description"' in body and 'id="builder-project"' in body
    assert '"description": "first draft"' in body and f'"project": {project.pk}' in body


def test_renaming_and_re_describing_alone_makes_no_version_and_is_audited(alice, project, definition):
    response = save(
        client_for(alice), definition, name="  T2DM, first diagnosis ", description="re-described", project=project.pk
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["definition"]["name"] == "T2DM, first diagnosis"
    assert data["definition"]["version"] == 1
    assert sorted(data["changed"]) == ["description", "name"]
    definition.refresh_from_db()
    assert (definition.name, definition.description, definition.versions.count()) == (
        "T2DM, first diagnosis",
        "re-described",
        1,
    )
    event = AuditEvent.objects.get(action="definition_update")
    assert event.actor == alice and event.object_id == str(definition.pk)
    assert event.detail["changed"]["name"] == {"from": "Type 2 diabetes", "to": "T2DM, first diagnosis"}


def test_a_rename_with_changed_criteria_is_one_save_with_a_new_version(alice, project, definition):
    changed = copy.deepcopy(EXPRESSION)
    changed["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 365
    response = post_json(
        client_for(alice),
        reverse("cohorts:builder_save", args=[definition.pk]),
        {
            "expression": changed,
            "name": "T2DM with history",
            "description": "",
            "project": project.pk,
            "note": "a year of history",
        },
    )
    assert response.status_code == 201
    assert response.json()["definition"]["version"] == 2
    definition.refresh_from_db()
    assert definition.name == "T2DM with history"
    assert definition.latest_version().note == "a year of history"
    assert AuditEvent.objects.filter(action__in=["definition_update", "definition_save"]).count() == 2


def test_saving_the_same_details_again_changes_nothing_but_makes_a_version_as_any_save(alice, project, definition):
    response = save(client_for(alice), definition, name=definition.name, description="first draft", project=project.pk)
    assert response.status_code == 201
    assert response.json()["changed"] == []
    assert definition.versions.count() == 2
    assert not AuditEvent.objects.filter(action="definition_update").exists()


def test_moving_to_a_project_of_ones_own_changes_its_sites_and_takes_back_shares_outside_it(
    alice, bob, project, bob_member, alices_other_project, definition
):
    definition_share(definition=definition, by=alice, to_project=project)
    definition_share(definition=definition, by=alice, to_user=bob)
    assert user_can(bob, "view_cohortdefinition", definition)
    response = save(
        client_for(alice), definition, name=definition.name, description="", project=alices_other_project.pk
    )
    assert response.status_code == 201, response.content
    definition.refresh_from_db()
    assert definition.project == alices_other_project
    # bob worked on it through the old project only: the shares of the project it left are taken back.
    assert not user_can(bob, "view_cohortdefinition", definition)
    assert client_for(bob).get(reverse("cohorts:definition_detail", args=[definition.pk])).status_code == 404
    event = AuditEvent.objects.get(action="definition_update")
    assert event.detail["unshared"] == {"projects": [project.pk], "users": ["bob"]}


def test_moving_to_a_project_one_has_no_rights_in_is_refused_and_changes_nothing(
    alice, project, charlies_project, definition
):
    client = client_for(alice)
    for target in (charlies_project.pk, charlies_project.pk + 1000):  # not hers, and no such project: one answer
        response = save(client, definition, name="Renamed too", description="", project=target)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert (error["block"], error["message"]) == ("name", "Choose a project you work in.")
    definition.refresh_from_db()
    assert (definition.name, definition.project, definition.versions.count()) == ("Type 2 diabetes", project, 1)
    assert not AuditEvent.objects.filter(action__in=["definition_update", "definition_save"]).exists()


def test_a_name_is_required_and_a_description_has_a_limit(alice, project, definition):
    client = client_for(alice)
    response = save(client, definition, name="   ", description="", project=project.pk)
    assert response.status_code == 400 and response.json()["errors"][0]["block"] == "name"
    response = save(client, definition, name="ok", description="x" * 5001, project=project.pk)
    assert response.status_code == 400 and response.json()["errors"][0]["block"] == "name"
    definition.refresh_from_db()
    assert definition.name == "Type 2 diabetes" and definition.versions.count() == 1


def test_a_member_who_sees_it_may_not_rename_it(alice, bob, project, bob_member, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    response = save(client_for(bob), definition, name="Bob's now", description="", project=project.pk)
    assert response.status_code == 403
    definition.refresh_from_db()
    assert definition.name == "Type 2 diabetes"


def test_the_first_version_keeps_the_note_given_when_it_was_created(alice, project):
    client = client_for(alice)
    response = post_json(
        client,
        reverse("cohorts:builder_create"),
        {"name": "T2DM", "project": project.pk, "expression": EXPRESSION, "note": "first try, from the protocol"},
    )
    assert response.status_code == 201
    definition = CohortDefinition.objects.get()
    save(client, definition, note="second thoughts")
    save(client, definition)
    notes = list(definition.versions.order_by("number").values_list("number", "note"))
    assert notes == [(1, "first try, from the protocol"), (2, "second thoughts"), (3, "saved in the builder")]
    page = client.get(reverse("cohorts:definition_versions", args=[definition.pk])).content.decode()
    for _number, note in notes:
        assert f"<td>{note}</td>" in page


def test_a_member_can_keep_a_project_that_is_no_longer_offered_to_them(alice, bob, steward, source):
    # bob's definition is in a project he then leaves: keeping it there needs no rights, so a rename still saves.
    project = make_project(principal_investigator=alice, created_by=steward, sources=[source], title="Left")
    membership = make_member(project=project, user=bob, owner=alice, steward=steward)
    definition = definition_create(owner=bob, name="Bob's", expression=EXPRESSION, project=project)
    membership.status = "revoked"
    membership.save()
    page = client_for(bob).get(reverse("cohorts:definition_edit", args=[definition.pk])).content.decode()
    assert f'"id": {project.pk}, "title": "Left"' in page
    response = save(client_for(bob), definition, name="Bob's, renamed", description="", project=project.pk)
    assert response.status_code == 201, response.content


def test_the_portals_own_notes_read_in_the_readers_language_and_the_authors_as_written(alice, project, definition):
    client = client_for(alice)
    save(client, definition, note="두 번째: HbA1c 추가")
    page = client.get(reverse("cohorts:definition_versions", args=[definition.pk]), HTTP_ACCEPT_LANGUAGE="ko")
    body = page.content.decode()
    assert "<td>생성됨</td>" in body and "<td>두 번째: HbA1c 추가</td>" in body
    detail = client.get(reverse("cohorts:definition_detail", args=[definition.pk]), HTTP_ACCEPT_LANGUAGE="ko")
    assert "<td>생성됨</td>" in detail.content.decode()
