"""Joining a project takes the owner's and a steward's approval; nobody approves their own request."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from accounts.choices import MembershipStatus
from accounts.models import Project
from accounts.permissions import projects_for_user
from accounts.services import membership_approve, membership_reject, membership_request, membership_revoke
from accounts.tests.factories import make_member, make_project
from audit.models import AuditEvent


def test_membership_needs_both_the_owner_and_the_steward(project, alice, bob, steward) -> None:
    membership = membership_request(project=project, user=bob)
    membership_approve(membership=membership, approver=alice)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.REQUESTED
    assert project not in projects_for_user(bob)
    membership_approve(membership=membership, approver=steward)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.APPROVED
    assert (membership.owner_approved_by, membership.steward_approved_by) == (alice, steward)
    assert project in projects_for_user(bob)


def test_the_steward_may_approve_first(project, alice, bob, steward) -> None:
    membership = membership_request(project=project, user=bob)
    membership_approve(membership=membership, approver=steward)
    membership_approve(membership=membership, approver=alice)
    assert project in projects_for_user(bob)


def test_nobody_approves_their_own_request(project, alice, steward, admin) -> None:
    membership = membership_request(project=project, user=steward)
    with pytest.raises(PermissionDenied):
        membership_approve(membership=membership, approver=steward)
    membership_approve(membership=membership, approver=alice)
    # The owner gave the owner's step; the steward's step may not come from the requester.
    with pytest.raises(PermissionDenied):
        membership_approve(membership=membership, approver=steward)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.REQUESTED


def test_self_approval_is_refused_on_the_page_too(project, alice, steward) -> None:
    membership = membership_request(project=project, user=steward)
    client = Client()
    client.force_login(steward)
    response = client.post(f"/projects/requests/{membership.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403
    membership.refresh_from_db()
    assert membership.steward_approved_by is None


def test_one_person_gives_one_of_the_two_approvals(admin, steward, bob, source) -> None:
    # The steward is the principal investigator (owner) of this project and its site's steward as well.
    project = make_project(principal_investigator=steward, created_by=admin, sources=[source], title="Stewarded")
    membership = membership_request(project=project, user=bob)
    membership_approve(membership=membership, approver=steward)
    with pytest.raises(PermissionDenied):
        membership_approve(membership=membership, approver=steward)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.REQUESTED
    assert membership.owner_approved_by == steward


def test_a_steward_of_another_site_cannot_approve(project, bob, other_steward) -> None:
    membership = membership_request(project=project, user=bob)
    with pytest.raises(PermissionDenied):
        membership_approve(membership=membership, approver=other_steward)


def test_an_outsider_cannot_approve(project, bob, charlie) -> None:
    membership = membership_request(project=project, user=bob)
    with pytest.raises(PermissionDenied):
        membership_approve(membership=membership, approver=charlie)


def test_rejection_needs_a_reason_and_tells_the_person(project, alice, bob, django_capture_on_commit_callbacks) -> None:
    membership = membership_request(project=project, user=bob)
    with pytest.raises(ValidationError):
        membership_reject(membership=membership, rejecter=alice, reason=" ")
    mail.outbox.clear()
    with pytest.raises(PermissionDenied):
        membership_reject(membership=membership, rejecter=bob, reason="changed my mind")
    with django_capture_on_commit_callbacks(execute=True):
        membership_reject(membership=membership, rejecter=alice, reason="not in the IRB protocol")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.REJECTED
    assert membership.reason == "not in the IRB protocol"
    assert [m.to for m in mail.outbox] == [[bob.email]]
    assert AuditEvent.objects.filter(action="membership_reject", actor=alice).exists()


def test_a_rejected_person_may_ask_again_and_approvals_start_over(project, alice, bob, steward) -> None:
    membership = membership_request(project=project, user=bob)
    membership_approve(membership=membership, approver=alice)
    membership_reject(membership=membership, rejecter=steward, reason="missing training")
    membership = membership_request(project=project, user=bob)
    assert membership.status == MembershipStatus.REQUESTED
    assert membership.owner_approved_by is None


def test_revoking_ends_access(project, steward, bob, bob_member) -> None:
    membership_revoke(membership=bob_member, revoked_by=steward, reason="left the hospital")
    assert project not in projects_for_user(bob)


def test_an_expired_project_cannot_be_joined(project, charlie) -> None:
    Project.objects.filter(pk=project.pk).update(
        starts_on=timezone.localdate() - dt.timedelta(days=60), expires_on=timezone.localdate() - dt.timedelta(days=1)
    )
    with pytest.raises(ValidationError):
        membership_request(project=project, user=charlie)


def test_member_loses_the_project_page_when_it_expires(project, bob, bob_member) -> None:
    client = Client()
    client.force_login(bob)
    assert client.get(f"/projects/{project.pk}/").status_code == 200
    Project.objects.filter(pk=project.pk).update(
        starts_on=timezone.localdate() - dt.timedelta(days=60), expires_on=timezone.localdate() - dt.timedelta(days=1)
    )
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    assert b"Diabetes outcomes" not in client.get("/projects/").content


def test_outsider_gets_404_on_the_project_page_like_a_missing_one(project, charlie) -> None:
    client = Client()
    client.force_login(charlie)
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    assert client.get("/projects/999999/").status_code == 404
    # The decision endpoint of a request in an invisible project is just as absent.
    membership = membership_request(project=project, user=charlie)
    assert client.post(f"/projects/requests/{membership.pk}/decide/", {"decision": "approve"}).status_code == 404


def test_project_page_shows_members_sources_and_requests_to_deciders(project, alice, bob, charlie, steward) -> None:
    make_member(project=project, user=bob, owner=alice, steward=steward)
    membership_request(project=project, user=charlie)
    client = Client()
    client.force_login(alice)
    body = client.get(f"/projects/{project.pk}/").content.decode()
    assert "bob" in body and "charlie" in body and "SYUH" in body
    client.force_login(bob)
    body = client.get(f"/projects/{project.pk}/").content.decode()
    assert "charlie" not in body  # members see members, not the queue


def test_only_admins_and_stewards_open_projects(alice, bob, steward, source, other_source) -> None:
    with pytest.raises(PermissionDenied):
        make_project(principal_investigator=bob, created_by=alice, sources=[source])
    with pytest.raises(ValidationError):
        make_project(principal_investigator=steward, created_by=steward, sources=[source])
    with pytest.raises(PermissionDenied):
        make_project(principal_investigator=bob, created_by=steward, sources=[other_source])
    client = Client()
    client.force_login(alice)
    assert client.get("/projects/new/").status_code == 404


def test_steward_opens_a_project_on_the_page(steward, alice, source) -> None:
    client = Client()
    client.force_login(steward)
    today = timezone.localdate()
    response = client.post(
        "/projects/new/",
        {
            "title": "Sepsis",
            "purpose": "Counts",
            "approval_number": "IRB-7",
            "principal_investigator": alice.pk,
            "starts_on": today.isoformat(),
            "expires_on": (today + dt.timedelta(days=10)).isoformat(),
            "sources": [source.pk],
        },
    )
    project = Project.objects.get(title="Sepsis")
    assert response.status_code == 302
    assert project in projects_for_user(alice)
    assert AuditEvent.objects.filter(action="project_create", actor=steward).exists()
