"""What each endpoint does, through the services the pages use: definitions (create, import, export, versions,
share), runs (start → queued, results with privacy applied, cancel), memberships and pending accounts decided
and audited, the audit log filtered, lists paginated."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import AccountStatus, MembershipStatus
from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import with_cell_keys
from jobs.choices import JobState
from tests.world import World

pytestmark = pytest.mark.django_db
API = "/api/v1"
Clients = Callable[[str], APIClient]


def test_a_researcher_creates_a_definition_in_their_project_and_reads_it_back(
    api_world: World, api_client: Clients
) -> None:
    project = api_world.P["project"]
    client = api_client("member")
    created = client.post(
        f"{API}/cohort-definitions/",
        {"name": "T2DM", "description": "first", "project": project.pk, "expression": EXPRESSION},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["owner"] == "bob" and body["latest_version"] == 1 and body["project"] == project.pk
    detail = client.get(f"{API}/cohort-definitions/{body['id']}/").json()
    assert detail["expression"]["PrimaryCriteria"] == EXPRESSION["PrimaryCriteria"]
    assert AuditEvent.objects.filter(action="definition_create", object_id=str(body["id"])).exists()
    # Another project's member cannot see it.
    assert api_client("outsider").get(f"{API}/cohort-definitions/{body['id']}/").status_code == 404


def test_a_definition_cannot_be_created_in_a_project_one_does_not_work_in(
    api_world: World, api_client: Clients
) -> None:
    before = CohortDefinition.objects.count()
    response = api_client("member").post(
        f"{API}/cohort-definitions/",
        {"name": "T2DM", "project": api_world.Q["project"].pk, "expression": EXPRESSION},
        format="json",
    )
    assert response.status_code == 400
    assert "project" in response.json()["error"]["fields"]
    assert CohortDefinition.objects.count() == before


def test_an_atlas_file_imported_as_text_exports_exactly_as_given(
    api_world: World, api_client: Clients, oracle_dir: Path
) -> None:
    text = (oracle_dir / "cohorts" / "h04_gibleed_censored_by_acetaminophen.json").read_text()
    client = api_client("member")
    imported = client.post(
        f"{API}/cohort-definitions/import/",
        {"name": "GI bleed censored", "project": api_world.P["project"].pk, "expression": text},
        format="json",
    )
    assert imported.status_code == 201, imported.content
    pk = imported.json()["id"]
    exported = client.get(f"{API}/cohort-definitions/{pk}/export/")
    assert exported.status_code == 200
    assert exported.json() == CohortDefinition.objects.get(pk=pk).latest_version().expression
    assert exported.json()["PrimaryCriteria"] == json.loads(text)["PrimaryCriteria"]
    # A whole ATLAS definition (expression under "expression") imports too.
    wrapped = client.post(
        f"{API}/cohort-definitions/import/",
        {"name": "wrapped", "expression": {"name": "from ATLAS", "expression": json.loads(text)}},
        format="json",
    )
    assert wrapped.status_code == 201, wrapped.content


def test_an_invalid_expression_is_refused_with_the_path_of_each_problem(api_world: World, api_client: Clients) -> None:
    bad = {**EXPRESSION, "PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 7}}]}}
    response = api_client("member").post(
        f"{API}/cohort-definitions/", {"name": "bad", "expression": bad}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(key.startswith("expression") for key in error["fields"]), error


def test_the_owner_saves_versions_and_lists_them_newest_first(api_world: World, api_client: Clients) -> None:
    definition = api_world.P["definition"]
    owner = APIClient()
    owner.force_login(definition.owner)
    changed = {**EXPRESSION, "QualifiedLimit": {"Type": "All"}}
    saved = owner.post(
        f"{API}/cohort-definitions/{definition.pk}/versions/",
        {"expression": changed, "note": "all events"},
        format="json",
    )
    assert saved.status_code == 201, saved.content
    assert saved.json()["number"] == 2 and saved.json()["note"] == "all events"
    versions = api_client("member").get(f"{API}/cohort-definitions/{definition.pk}/versions/").json()
    assert [v["number"] for v in versions["results"]] == [2, 1]
    assert owner.get(f"{API}/cohort-definitions/{definition.pk}/export/?version=1").json()["QualifiedLimit"] == {
        "Type": "First"
    }
    assert owner.get(f"{API}/cohort-definitions/{definition.pk}/export/?version=9").status_code == 404


def test_the_owner_shares_with_a_person_of_the_project_and_unknown_people_get_one_message(
    api_world: World, api_client: Clients
) -> None:
    definition = api_world.P["definition"]
    owner = APIClient()
    owner.force_login(definition.owner)
    url = f"{API}/cohort-definitions/{definition.pk}/share/"
    shared = owner.post(url, {"username": "bob"}, format="json")
    assert shared.status_code == 200 and "bob" in shared.json()["users"]
    nobody = owner.post(url, {"username": "no-such-person"}, format="json").json()["error"]
    outsider = owner.post(url, {"username": "charlie"}, format="json").json()["error"]
    assert nobody["fields"] == outsider["fields"]
    assert owner.post(url, {"username": "bob", "project": 1}, format="json").status_code == 400


def test_starting_a_count_queues_one_run_per_chosen_site(api_world: World, api_client: Clients) -> None:
    definition = api_world.P["definition"]
    response = api_client("member").post(
        f"{API}/runs/", {"definition": definition.pk, "sources": ["syuh"], "kind": "count"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "queued" and body["total"] is None and body["can_cancel"] is True
    assert [site["source"] for site in body["sites"]] == ["syuh"]
    request = RunRequest.objects.get(pk=body["request"])
    assert request.runs.get().state == JobState.QUEUED
    cancelled = api_client("member").post(f"{API}/runs/{request.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True


def test_a_site_outside_ones_projects_is_refused_and_nothing_is_written(api_world: World, api_client: Clients) -> None:
    before = (RunRequest.objects.count(), CohortRun.objects.count())
    response = api_client("member").post(
        f"{API}/runs/", {"definition": api_world.P["definition"].pk, "sources": ["crh"]}, format="json"
    )
    assert response.status_code == 400
    assert "crh" in response.json()["error"]["fields"]["sources"][0]
    assert (RunRequest.objects.count(), CohortRun.objects.count()) == before


def _finished(api_world: World, persons: int) -> RunRequest:
    definition = api_world.P["definition"]
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=api_world.users["member"]
    )
    run = CohortRun.objects.create(
        version=version,
        source=api_world.P["source"],
        kind=RunKind.COUNT,
        cache_key=f"api-{persons}",
        source_fingerprint="f" * 64,
        requested_by=api_world.users["member"],
        state=JobState.SUCCEEDED,
        result=with_cell_keys(
            {
                "persons": persons,
                "rows": persons,
                "inclusion_rules": [],
                "attrition": [{"name": "entry", "persons": persons}],
            }
        ),
    )
    request.runs.add(run)
    return request


def test_results_leave_with_the_privacy_rule_of_the_readers_role(api_world: World, api_client: Clients) -> None:
    small = _finished(api_world, 7)
    body = api_client("member").get(f"{API}/runs/{small.pk}/").json()
    assert body["finished"] is True
    assert body["total"]["display"] == "<10" and body["total"]["value"] is None
    assert body["sites"][0]["persons"] == {"value": None, "display": "<10", "hidden": True}
    assert "7" not in json.dumps(body["sites"][0]["attrition"])
    big = _finished(api_world, 1234)
    member = api_client("member").get(f"{API}/runs/{big.pk}/").json()
    partner = api_client("partner").get(f"{API}/runs/{big.pk}/").json()
    assert member["total"]["value"] == 1234
    # The partner is aggregate-only on this site: rounded to the nearest 10, and told so.
    assert partner["total"]["value"] == 1230 and partner["sites"][0]["privacy"]["round_to"] == 10
    assert AuditEvent.objects.filter(action="view_result", actor=api_world.users["partner"]).exists()


def test_sources_come_with_their_privacy_rule_for_the_caller(api_world: World, api_client: Clients) -> None:
    member = api_client("member").get(f"{API}/sources/").json()["results"]
    partner = api_client("partner").get(f"{API}/sources/").json()["results"]
    assert [s["key"] for s in member] == ["syuh"]
    assert member[0]["privacy"]["round_to"] == 1 and partner[0]["privacy"]["round_to"] == 10
    assert member[0]["ready"] is True
    assert api_client("outsider").get(f"{API}/sources/").json()["count"] == 0


def test_joining_a_project_takes_the_owners_and_the_stewards_approval(api_world: World, api_client: Clients) -> None:
    project = api_world.P["project"]
    joined = api_client("outsider").post(f"{API}/projects/{project.pk}/memberships/")
    assert joined.status_code == 201 and joined.json()["status"] == MembershipStatus.REQUESTED
    pk = joined.json()["id"]
    owner = APIClient()
    owner.force_login(project.principal_investigator)
    first = owner.post(f"{API}/projects/{project.pk}/memberships/{pk}/approve/")
    assert first.status_code == 200 and first.json()["status"] == MembershipStatus.REQUESTED
    second = api_client("steward").post(f"{API}/projects/{project.pk}/memberships/{pk}/approve/")
    assert second.status_code == 200 and second.json()["status"] == MembershipStatus.APPROVED
    assert api_client("outsider").get(f"{API}/projects/{project.pk}/").status_code == 200
    steps = AuditEvent.objects.filter(action="membership_approve", object_id=str(pk)).count()
    assert steps == 2


def test_rejecting_needs_a_reason_and_is_audited(api_world: World, api_client: Clients) -> None:
    membership = api_world.P["membership"]
    url = f"{API}/projects/{membership.project_id}/memberships/{membership.pk}/reject/"
    steward = api_client("steward")
    assert steward.post(url, {"reason": "   "}, format="json").status_code == 400
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.REQUESTED
    done = steward.post(url, {"reason": "Not in this study."}, format="json")
    assert done.status_code == 200 and done.json()["status"] == MembershipStatus.REJECTED
    assert AuditEvent.objects.filter(action="membership_reject", object_id=str(membership.pk)).exists()


def test_a_steward_approves_into_their_organisation_only(api_world: World, api_client: Clients) -> None:
    account = api_world.P["account"]
    url = f"{API}/accounts/pending/{account.pk}/approve/"
    steward = api_client("steward")
    other = steward.post(url, {"organisation": "Chuncheon Regional Hospital", "role": "researcher"}, format="json")
    assert other.status_code == 403
    too_high = steward.post(url, {"organisation": "Soyang University Hospital", "role": "admin"}, format="json")
    assert too_high.status_code == 403
    unknown = steward.post(url, {"organisation": "Nowhere", "role": "researcher"}, format="json")
    assert unknown.status_code == 400
    account.refresh_from_db()
    assert account.status == AccountStatus.PENDING
    ok = steward.post(url, {"organisation": "Soyang University Hospital", "role": "researcher"}, format="json")
    assert ok.status_code == 200
    account.refresh_from_db()
    assert account.status == AccountStatus.APPROVED
    assert api_client("steward").get(f"{API}/accounts/pending/").json()["count"] == 0


def test_the_audit_log_is_filtered_by_action_user_and_date(api_world: World, api_client: Clients) -> None:
    admin = api_client("admin")
    counts = admin.get(f"{API}/audit-events/", {"action": "count"}).json()
    assert counts["count"] == 2 and {e["action"] for e in counts["results"]} == {"count"}
    by_bob = admin.get(f"{API}/audit-events/", {"action": "count", "user": "BOB"}).json()
    assert [e["actor_username"] for e in by_bob["results"]] == ["bob"]
    steward = api_client("steward").get(f"{API}/audit-events/", {"action": "count"}).json()
    assert [e["source_key"] for e in steward["results"]] == ["syuh"]
    future = admin.get(f"{API}/audit-events/", {"date_from": "2999-01-01"}).json()
    assert future["count"] == 0
    bad = admin.get(f"{API}/audit-events/", {"date_from": "yesterday"})
    assert bad.status_code == 400 and "date_from" in bad.json()["error"]["fields"]


def test_lists_are_paginated(api_world: World, api_client: Clients) -> None:
    admin = api_client("admin")
    page = admin.get(f"{API}/audit-events/", {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"] and page["count"] > 2
    beyond = admin.get(f"{API}/audit-events/", {"page": 9999})
    assert beyond.status_code == 404 and beyond.json()["error"]["code"] == "not_found"


def test_listing_definitions_costs_the_same_queries_for_one_or_many(
    api_world: World, api_client: Clients, django_assert_max_num_queries: Any
) -> None:
    from cohorts.definitions.services import definition_create

    member = api_client("member")
    with django_assert_max_num_queries(20) as few:
        member.get(f"{API}/cohort-definitions/")
    for index in range(10):
        definition_create(owner=api_world.users["member"], name=f"extra {index}", expression=EXPRESSION)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert member.get(f"{API}/cohort-definitions/").json()["count"] >= 11
