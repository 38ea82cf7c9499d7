"""The home page of each role: researchers their projects, definitions and counts with state; partners the
cohorts shared with their projects with rounded counts and a dataset-requests block; stewards and admins their
approval queues with counts, the health of their sites and an audit search."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.choices import AccountStatus, Role
from accounts.permissions import grant
from accounts.services import membership_approve, membership_request
from accounts.tests.factories import OrganisationFactory, UserFactory
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import with_cell_keys
from datasets.choices import RequestState
from datasets.models import DatasetRequest, SiteReview
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def dataset_request(definition: Any, requester: Any, project: Any, source: Any, *, state: str) -> DatasetRequest:
    """A request row in ``state``, visible to its requester as the service makes it (the permission on the row)."""
    request = DatasetRequest.objects.create(
        version=definition.latest_version(),
        project=project,
        requester=requester,
        purpose="home test",
        legal_basis="irb",
        state=state,
    )
    request.sites.set([source])
    grant(request, codenames=["view_datasetrequest"], to_user=requester)
    return request


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run(definition: Any, user: Any, source: Any, *, state: str, persons: int = 0, key: str = "") -> RunRequest:
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=user
    )
    finished = state in (JobState.SUCCEEDED, JobState.FAILED)
    request.runs.add(
        CohortRun.objects.create(
            version=version,
            source=source,
            kind=RunKind.COUNT,
            cache_key=key or f"home-{definition.pk}-{state}-{persons}",
            source_fingerprint="f" * 64,
            requested_by=user,
            state=state,
            finished_at=timezone.now() if finished else None,
            result=with_cell_keys({"persons": persons}) if state == JobState.SUCCEEDED else None,
        )
    )
    return request


@pytest.fixture
def partner(project, alice, steward) -> Any:
    user = UserFactory(username="pharma", role=Role.PARTNER, organisation=OrganisationFactory(name="Pharma Co"))
    membership = membership_request(project=project, user=user)
    membership_approve(membership=membership, approver=alice)
    membership_approve(membership=membership, approver=steward)
    return user


def test_a_researcher_sees_projects_with_expiry_recent_definitions_and_counts_with_their_state(alice, project, source):
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    run(definition, alice, source, state=JobState.SUCCEEDED, persons=120)
    run(definition, alice, source, state=JobState.RUNNING)
    response = client_for(alice).get("/")
    body = response.content.decode()
    assert list(response.context["projects"]) == [project]
    assert f"until {project.expires_on:%Y-%m-%d}" in body
    assert list(response.context["my_definitions"]) == [definition]
    assert [row["state"] for row in response.context["recent_runs"]] == ["running", "finished"]
    assert 'class="state state-running"' in body and 'class="state state-finished"' in body
    assert 'id="home-manager"' not in body and 'id="home-partner"' not in body


def test_a_partner_sees_the_cohorts_shared_with_their_project_with_rounded_counts(alice, partner, project, source):
    shared = definition_create(owner=alice, name="Shared cohort", expression=EXPRESSION, project=project)
    definition_share(definition=shared, by=alice, to_project=project)
    definition_create(owner=alice, name="Alice's private draft", expression=EXPRESSION, project=project)
    run(shared, alice, source, state=JobState.SUCCEEDED, persons=1234)
    response = client_for(partner).get("/")
    body = response.content.decode()
    assert [row["definition"].name for row in response.context["partner_cohorts"]] == ["Shared cohort"]
    assert response.context["partner_cohorts"][0]["count"]["display"] == "1,230"
    assert "1,234" not in body and "private draft" not in body
    assert 'id="home-partner-datasets"' in body
    assert 'id="home-researcher"' not in body


def test_a_steward_sees_queue_counts_linking_to_approvals_and_an_audit_search(steward, hospital, project, alice):
    UserFactory(username="newcomer", organisation=hospital, status=AccountStatus.PENDING)
    joiner = UserFactory(username="joiner", organisation=hospital)
    membership_approve(membership=membership_request(project=project, user=joiner), approver=alice)
    response = client_for(steward).get("/")
    body = response.content.decode()
    assert response.context["pending_accounts"] == 1
    assert response.context["membership_requests"] == 1
    assert '<span class="badge" id="queue-accounts">1</span>' in body
    assert '<span class="badge" id="queue-memberships">1</span>' in body
    assert reverse("accounts:approvals") in body
    assert f'action="{reverse("audit:event_list")}"' in body and 'name="user"' in body


def test_site_health_shows_each_site_with_its_runs_and_failures_of_the_last_day(
    steward, admin, alice, project, source, other_source
):
    source.cdm_version = "5.4"
    source.fingerprint = "abcdef0123456789" * 4
    source.loaded_at = timezone.now()
    source.statement_timeout_seconds = 300
    source.save()
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    run(definition, alice, source, state=JobState.SUCCEEDED, persons=50)
    run(definition, alice, source, state=JobState.FAILED, key="failed")
    old = run(definition, alice, source, state=JobState.FAILED, key="old")
    CohortRun.objects.filter(requests=old).update(queued_at=timezone.now() - dt.timedelta(days=2))

    sites = client_for(steward).get("/").context["sites"]
    # A steward sees the sites of their own hospital only; the admin every site.
    assert [row["source"].key for row in sites] == ["syuh"]
    row = sites[0]
    assert (row["runs"], row["failures"]) == (2, 1)
    assert row["fingerprint"] == "abcdef012345"
    assert row["privacy"] == "perturbed (at most ±3), counts under 10 hidden"
    assert row["partner_privacy"] == "perturbed (at most ±3), counts under 10 hidden, rounded to the nearest 10"
    body = client_for(steward).get("/").content.decode()
    assert "300 s" in body and "abcdef012345" in body and "5.4" in body
    assert [r["source"].key for r in client_for(admin).get("/").context["sites"]] == ["crh", "syuh"]


def test_researchers_and_partners_get_no_site_health_or_queues(alice, charlie, partner):
    for user in (alice, charlie, partner):
        response = client_for(user).get("/")
        assert "sites" not in response.context
        assert 'id="site-health"' not in response.content.decode()


def test_a_partner_sees_their_dataset_requests_with_state_and_next_step_and_nobody_elses(
    alice, partner, project, source
):
    shared = definition_create(owner=alice, name="Shared cohort", expression=EXPRESSION, project=project)
    draft = dataset_request(shared, partner, project, source, state=RequestState.DRAFT)
    review = dataset_request(shared, partner, project, source, state=RequestState.UNDER_REVIEW)
    dataset_request(shared, alice, project, source, state=RequestState.SUBMITTED)  # someone else's
    response = client_for(partner).get("/")
    body = response.content.decode()
    rows = response.context["dataset_requests"]
    assert [row["request"] for row in rows] == [review, draft]
    assert [str(row["next_step"]) for row in rows] == [
        "Waiting for the data stewards of the sites.",
        "Attach the approval document and submit the request.",
    ]
    assert 'id="dataset-requests"' in body and "Under review" in body and "Draft" in body
    assert reverse("datasets:request_detail", args=[draft.pk]) in body
    assert "You have no dataset request yet" not in body


def test_a_partner_without_dataset_requests_is_told_how_to_make_one(partner):
    body = client_for(partner).get("/").content.decode()
    assert "You have no dataset request yet" in body and 'id="dataset-requests"' not in body


def test_a_steward_sees_how_many_dataset_reviews_wait_for_their_sites_and_a_link_to_them(
    steward, admin, alice, partner, project, source, other_source
):
    shared = definition_create(owner=alice, name="Shared cohort", expression=EXPRESSION, project=project)
    for state in (RequestState.UNDER_REVIEW, RequestState.SUBMITTED, RequestState.APPROVED):
        request = dataset_request(shared, partner, project, source, state=state)
        SiteReview.objects.create(request=request, source=source)
    elsewhere = dataset_request(shared, partner, project, other_source, state=RequestState.UNDER_REVIEW)
    SiteReview.objects.create(request=elsewhere, source=other_source)  # another hospital's queue
    response = client_for(steward).get("/")
    body = response.content.decode()
    assert response.context["dataset_reviews"] == 2
    assert '<span class="badge" id="queue-dataset-reviews">2</span>' in body
    assert f'href="{reverse("datasets:request_list")}"' in body
    assert client_for(admin).get("/").context["dataset_reviews"] == 0  # admins decide no site's review


def test_shared_with_me_lists_what_was_shared_not_all_an_admin_may_open(alice, admin, bob, bob_member, project):
    shared = definition_create(owner=alice, name="Shared cohort", expression=EXPRESSION, project=project)
    definition_share(definition=shared, by=alice, to_project=project)
    definition_create(owner=alice, name="Kept to herself", expression=EXPRESSION, project=project)

    assert [d.name for d in client_for(bob).get("/").context["shared_definitions"]] == ["Shared cohort"]
    # The admin may open both, but nobody shared either with them.
    admin_home = client_for(admin).get("/")
    assert list(admin_home.context["shared_definitions"]) == []
    assert "Kept to herself" not in admin_home.content.decode()
