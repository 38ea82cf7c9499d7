"""The definitions list (search, filters, sort, 50 a page, latest version and count), versions and their
comparison in words, restoring, duplicating, sharing and unsharing from the page, and the printable summary.

The standard people (accounts.tests.fixtures): alice owns project P, bob is an approved member, charlie an
approved researcher outside it; a pharma partner is made a partner viewer of P where needed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import ProjectRole, Role
from accounts.services import membership_approve, membership_request
from accounts.tests.factories import OrganisationFactory, UserFactory
from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create, definition_save_version, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.conftest import oracle_definition
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import with_cell_keys
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def definition(alice, project) -> CohortDefinition:
    return definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)


@pytest.fixture
def partner(project, alice, steward) -> Any:
    user = UserFactory(username="pharma", role=Role.PARTNER, organisation=OrganisationFactory(name="Pharma Co"))
    membership = membership_request(project=project, user=user)
    membership_approve(membership=membership, approver=alice)
    membership_approve(membership=membership, approver=steward)
    assert membership.role == ProjectRole.PARTNER_VIEWER
    return user


def finished_count(definition: CohortDefinition, user: Any, source: Any, persons: int) -> RunRequest:
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=user
    )
    run = CohortRun.objects.create(
        version=version,
        source=source,
        kind=RunKind.COUNT,
        cache_key=f"pages-{definition.pk}-{version.number}-{persons}",
        source_fingerprint="f" * 64,
        requested_by=user,
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": persons, "rows": persons, "inclusion_rules": [], "attrition": []}),
    )
    request.runs.add(run)
    return request


# --- the list ---------------------------------------------------------------------------------------------------


def test_list_pages_fifty_definitions_at_a_time_with_the_filters_kept_in_the_links(alice, project):
    for n in range(60):
        definition_create(owner=alice, name=f"Cohort {n:02d}", expression=EXPRESSION, project=project)
    client = client_for(alice)
    first = client.get(reverse("cohorts:definition_list"), {"q": "Cohort", "sort": "name"})
    assert first.status_code == 200
    assert [d.name for d in first.context["definitions"]][:2] == ["Cohort 00", "Cohort 01"]
    assert len(first.context["definitions"]) == 50
    assert "q=Cohort&amp;sort=name&amp;page=2" in first.content.decode()
    second = client.get(reverse("cohorts:definition_list"), {"q": "Cohort", "sort": "name", "page": 2})
    assert [d.name for d in second.context["definitions"]] == [f"Cohort {n}" for n in range(50, 60)]


def test_list_shows_the_latest_version_with_its_author_and_the_last_count(alice, bob, project, bob_member, source):
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    definition_save_version(definition=definition, expression=EXPRESSION, author=alice, note="second")
    finished_count(definition, bob, source, 1234)
    row = client_for(bob).get(reverse("cohorts:definition_list")).context["rows"][0]
    assert row["definition"].latest_number == 2
    assert row["definition"].latest_author == "alice"
    assert row["count"]["display"] == "1,234"


def test_a_partner_sees_the_last_count_rounded_and_a_small_one_hidden(alice, partner, project, source):
    big = definition_create(owner=alice, name="Big", expression=EXPRESSION, project=project)
    small = definition_create(owner=alice, name="Small", expression=EXPRESSION, project=project)
    for definition, persons in ((big, 1234), (small, 7)):
        definition_share(definition=definition, by=alice, to_project=project)
        finished_count(definition, alice, source, persons)
    response = client_for(partner).get(reverse("cohorts:definition_list"), {"sort": "name"})
    shown = {row["definition"].name: row["count"]["display"] for row in response.context["rows"]}
    assert shown == {"Big": "1,230", "Small": "<10"}
    assert "1,234" not in response.content.decode()


def test_owner_filter_separates_mine_from_shared_with_me(alice, bob, project, bob_member, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    definition_create(owner=bob, name="Bob's own", expression=EXPRESSION, project=project)
    client = client_for(bob)

    def names(owner: str) -> list[str]:
        return [d.name for d in client.get(reverse("cohorts:definition_list"), {"owner": owner}).context["definitions"]]

    assert names("me") == ["Bob's own"]
    assert names("others") == ["Type 2 diabetes"]
    assert sorted(names("")) == ["Bob's own", "Type 2 diabetes"]


def test_a_page_of_the_list_costs_the_same_number_of_queries_for_10_or_50_definitions(
    alice, project, source, django_assert_max_num_queries
):
    def create(n: int) -> None:
        for i in range(n):
            definition = definition_create(owner=alice, name=f"D{i}", expression=EXPRESSION, project=project)
            finished_count(definition, alice, source, 100 + i)

    create(10)
    client = client_for(alice)
    with django_assert_max_num_queries(20) as ten:
        client.get(reverse("cohorts:definition_list"))
    assert len(ten.captured_queries) > 5  # the page's own queries were seen
    create(40)
    with django_assert_max_num_queries(len(ten.captured_queries)):
        client.get(reverse("cohorts:definition_list"))


def test_an_unknown_sort_or_owner_falls_back_to_the_default_list(alice, definition):
    response = client_for(alice).get(reverse("cohorts:definition_list"), {"sort": "drop table", "owner": "x" * 300})
    assert response.status_code == 200
    assert [d.name for d in response.context["definitions"]] == ["Type 2 diabetes"]


# --- versions, compare, restore ---------------------------------------------------------------------------------


@pytest.fixture
def versioned(alice, project) -> CohortDefinition:
    """An oracle definition saved twice: v2 adds a year of prior observation and drops an inclusion rule."""
    old = oracle_definition("pl_3385")
    definition = definition_create(owner=alice, name="Alzheimer's disease", expression=old, project=project)
    new = copy.deepcopy(old)
    new["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 365
    new["InclusionRules"].pop(0)
    definition_save_version(definition=definition, expression=new, author=alice, note="stricter")
    return definition


def test_versions_page_lists_every_version_with_author_and_note(alice, versioned):
    response = client_for(alice).get(reverse("cohorts:definition_versions", args=[versioned.pk]))
    assert response.status_code == 200
    assert [v.number for v in response.context["versions"]] == [2, 1]
    body = response.content.decode()
    assert "stricter" in body and "Restore version 1" in body


def test_compare_says_the_changes_between_two_versions_in_sentences(alice, versioned):
    removed = oracle_definition("pl_3385")["InclusionRules"][0]["name"]
    response = client_for(alice).get(reverse("cohorts:version_compare", args=[versioned.pk]), {"a": 1, "b": 2})
    assert response.status_code == 200
    texts = [change.text for change in response.context["changes"]]
    assert texts == ["Observation window before index: 0 → 365 days", f"Inclusion rule '{removed}' removed"]
    assert "0 → 365 days" in response.content.decode()


def test_compare_with_a_version_that_does_not_exist_answers_404_and_without_numbers_400(alice, versioned):
    client = client_for(alice)
    url = reverse("cohorts:version_compare", args=[versioned.pk])
    assert client.get(url, {"a": 1, "b": 9}).status_code == 404
    assert client.get(url, {"a": "x"}).status_code == 400


def test_the_owner_restores_an_old_version_as_a_new_one_and_it_is_audited(alice, versioned):
    response = client_for(alice).post(reverse("cohorts:version_restore", args=[versioned.pk, 1]))
    assert response.status_code == 302
    latest = versioned.latest_version()
    assert latest.number == 3
    assert latest.expression == versioned.versions.get(number=1).expression
    assert latest.note == "restored from version 1"
    event = AuditEvent.objects.get(action="definition_restore")
    assert event.detail == {"restored": 1, "version": 3}


def test_a_member_who_may_see_the_versions_may_not_restore_one(alice, bob, project, bob_member, versioned):
    definition_share(definition=versioned, by=alice, to_project=project)
    client = client_for(bob)
    assert client.get(reverse("cohorts:definition_versions", args=[versioned.pk])).status_code == 200
    assert client.post(reverse("cohorts:version_restore", args=[versioned.pk, 1])).status_code == 403
    assert versioned.versions.count() == 2


# --- duplicate ----------------------------------------------------------------------------------------------------


def test_a_member_duplicates_a_shared_definition_into_their_own_copy(alice, bob, project, bob_member, versioned):
    definition_share(definition=versioned, by=alice, to_project=project)
    response = client_for(bob).post(reverse("cohorts:definition_duplicate", args=[versioned.pk]), {"name": "Mine"})
    copy_ = CohortDefinition.objects.get(name="Mine")
    assert response["Location"] == reverse("cohorts:definition_detail", args=[copy_.pk])
    assert copy_.owner == bob and copy_.project == project
    assert [v.number for v in copy_.versions.all()] == [1]
    assert copy_.latest_version().expression == versioned.latest_version().expression
    assert copy_.latest_version().author == bob
    event = AuditEvent.objects.get(action="definition_duplicate")
    assert event.detail == {"from_definition": versioned.pk, "from_version": 2}
    # The copy is not shared: alice does not see bob's copy.
    assert client_for(alice).get(reverse("cohorts:definition_detail", args=[copy_.pk])).status_code == 404


def test_a_partner_may_not_duplicate_and_nothing_is_written(alice, partner, project, definition):
    definition_share(definition=definition, by=alice, to_project=project)
    response = client_for(partner).post(reverse("cohorts:definition_duplicate", args=[definition.pk]))
    assert response.status_code == 403
    assert CohortDefinition.objects.count() == 1


def test_duplicating_a_definition_of_a_project_one_left_asks_for_a_project_they_work_in(alice, bob, definition):
    # bob was given the definition directly while he worked elsewhere; he works in no project now.
    from accounts.permissions import grant

    grant(definition, codenames=["view_cohortdefinition"], to_user=bob)
    response = client_for(bob).post(reverse("cohorts:definition_duplicate", args=[definition.pk]), follow=True)
    assert "Copy it into a project you work in." in response.content.decode()
    assert CohortDefinition.objects.count() == 1


# --- share and unshare -------------------------------------------------------------------------------------------


def test_the_owner_shares_with_the_project_from_the_list_sees_it_listed_and_unshares_it(
    alice, bob, project, bob_member, definition
):
    client = client_for(alice)
    detail = reverse("cohorts:definition_detail", args=[definition.pk])
    page = client.get(detail)
    assert list(page.context["share_candidates"]["projects"]) == [project]
    assert [u.username for u in page.context["share_candidates"]["users"]] == ["bob"]
    client.post(reverse("cohorts:definition_share", args=[definition.pk]), {"project": project.pk})
    assert client.get(detail).context["shares"]["projects"] == [project]
    assert client_for(bob).get(detail).status_code == 200

    client.post(reverse("cohorts:definition_unshare", args=[definition.pk]), {"project": project.pk})
    assert client.get(detail).context["shares"] == {"projects": [], "users": []}
    assert client_for(bob).get(detail).status_code == 404
    assert AuditEvent.objects.filter(action="definition_unshare", detail={"project": project.pk}).exists()


def test_sharing_with_a_project_one_does_not_work_in_changes_nothing(alice, charlie, admin, definition, other_source):
    from accounts.tests.factories import make_project

    elsewhere = make_project(principal_investigator=charlie, created_by=admin, sources=[other_source], title="Q")
    response = client_for(alice).post(
        reverse("cohorts:definition_share", args=[definition.pk]), {"project": elsewhere.pk}, follow=True
    )
    assert "Choose a project you work in." in response.content.decode()
    assert not AuditEvent.objects.filter(action="definition_share").exists()


def test_unsharing_from_a_person_takes_their_access_away(alice, bob, project, bob_member, definition):
    client = client_for(alice)
    client.post(reverse("cohorts:definition_share", args=[definition.pk]), {"username": "bob"})
    assert [
        u.username
        for u in client.get(reverse("cohorts:definition_detail", args=[definition.pk])).context["shares"]["users"]
    ] == ["bob"]
    client.post(reverse("cohorts:definition_unshare", args=[definition.pk]), {"user": bob.pk})
    assert client_for(bob).get(reverse("cohorts:definition_detail", args=[definition.pk])).status_code == 404


def test_unsharing_from_the_owner_is_not_possible(alice, definition):
    response = client_for(alice).post(
        reverse("cohorts:definition_unshare", args=[definition.pk]), {"user": alice.pk}, follow=True
    )
    assert "It is not shared with that person." in response.content.decode()
    assert client_for(alice).get(reverse("cohorts:definition_detail", args=[definition.pk])).status_code == 200


# --- printable summary -------------------------------------------------------------------------------------------


def test_summary_has_the_expression_in_sentences_concepts_and_protected_counts_per_site(
    alice, partner, project, source, other_source
):
    # Both sites are the project's: the summary shows a site's count only to those who may count there.
    project.sources.add(other_source)
    expression = oracle_definition("pl_10606")
    definition = definition_create(owner=alice, name="Ulcerative colitis", expression=expression, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    finished_count(definition, alice, source, 1234)
    finished_count(definition, alice, other_source, 4)
    url = reverse("cohorts:definition_summary", args=[definition.pk])

    body = client_for(alice).get(url).content.decode()
    assert "Ulcerative colitis" in body and project.title in body
    assert "a condition of “Ulcerative colitis”" in body
    first = expression["ConceptSets"][0]["expression"]["items"][0]["concept"]
    assert first["CONCEPT_NAME"] in body and first["CONCEPT_CODE"] in body
    assert "1,234" in body and "&lt;10" in body

    partner_body = client_for(partner).get(url).content.decode()
    assert "1,230" in partner_body and "1,234" not in partner_body


def test_the_stylesheet_has_print_rules_that_hide_the_navigation():
    from pathlib import Path

    css = (Path(__file__).resolve().parents[2] / "static" / "css" / "soyang.css").read_text()
    print_block = css[css.index("@media print") :]
    assert ".topbar" in print_block and ".no-print" in print_block
