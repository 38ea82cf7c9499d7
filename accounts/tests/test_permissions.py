"""The permission layer: object permissions for users and projects, honoured only while they should be."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.choices import AccountStatus
from accounts.models import Organisation, Project, User
from accounts.permissions import (
    filter_by_permission,
    grant,
    project_sources_for_user,
    projects_for_user,
    revoke,
    user_can,
)


def _organisations() -> object:
    return Organisation.objects.all()


def test_a_permission_granted_to_a_user_reaches_that_user_only(hospital, alice, bob, charlie) -> None:
    grant(hospital, codenames=["view_organisation"], to_user=bob)
    assert user_can(bob, "view_organisation", hospital)
    assert user_can(bob, "accounts.view_organisation", hospital)
    assert not user_can(charlie, "view_organisation", hospital)
    assert not user_can(bob, "change_organisation", hospital)
    assert list(filter_by_permission(queryset=_organisations(), user=bob, codename="view_organisation")) == [hospital]


def test_a_permission_granted_to_a_project_reaches_its_approved_members(
    hospital, project, alice, bob, charlie, bob_member
) -> None:
    grant(hospital, codenames=["view_organisation"], to_project=project)
    assert user_can(alice, "view_organisation", hospital)
    assert user_can(bob, "view_organisation", hospital)
    assert not user_can(charlie, "view_organisation", hospital)


def test_a_project_grant_can_be_narrowed_to_some_roles(hospital, project, alice, bob, bob_member) -> None:
    grant(hospital, codenames=["change_organisation"], to_project=project, project_roles=["owner"])
    assert user_can(alice, "change_organisation", hospital)
    assert not user_can(bob, "change_organisation", hospital)


def test_revoke_takes_back_what_grant_gave(hospital, project, bob, bob_member) -> None:
    grant(hospital, codenames=["view_organisation"], to_project=project)
    grant(hospital, codenames=["view_organisation"], to_user=bob)
    revoke(hospital, codenames=["view_organisation"], from_project=project)
    assert user_can(bob, "view_organisation", hospital)  # the direct grant remains
    revoke(hospital, codenames=["view_organisation"], from_user=bob)
    assert not user_can(bob, "view_organisation", hospital)


def test_an_expired_project_gives_nothing_any_more(hospital, project, bob, bob_member, source) -> None:
    grant(hospital, codenames=["view_organisation"], to_project=project)
    assert project in projects_for_user(bob)
    assert list(project_sources_for_user(bob, project)) == [source]
    Project.objects.filter(pk=project.pk).update(
        starts_on=timezone.localdate() - dt.timedelta(days=60), expires_on=timezone.localdate() - dt.timedelta(days=1)
    )
    assert project not in projects_for_user(bob)
    assert list(project_sources_for_user(bob, project)) == []
    assert not user_can(bob, "view_organisation", hospital)
    assert not user_can(bob, "view_project", project)


def test_a_project_that_has_not_started_gives_nothing_yet(project, bob, bob_member) -> None:
    Project.objects.filter(pk=project.pk).update(
        starts_on=timezone.localdate() + dt.timedelta(days=1), expires_on=timezone.localdate() + dt.timedelta(days=9)
    )
    assert project not in projects_for_user(bob)


@pytest.mark.parametrize("status", [AccountStatus.PENDING, AccountStatus.REJECTED, AccountStatus.SUSPENDED])
def test_an_account_that_is_not_approved_sees_nothing(hospital, project, bob, bob_member, status) -> None:
    grant(hospital, codenames=["view_organisation"], to_user=bob)
    User.objects.filter(pk=bob.pk).update(status=status)
    bob.refresh_from_db()
    assert not user_can(bob, "view_organisation", hospital)
    assert not projects_for_user(bob).exists()


def test_admins_see_everything(hospital, project, admin) -> None:
    assert user_can(admin, "change_organisation", hospital)
    assert project in projects_for_user(admin)


def test_project_roles_carry_their_permissions_on_the_project(project, alice, bob, charlie, bob_member) -> None:
    assert user_can(alice, "change_project", project)
    assert user_can(bob, "run_project", project)
    assert not user_can(bob, "change_project", project)
    assert not user_can(charlie, "view_project", project)


def test_an_unknown_codename_is_an_error(hospital, bob) -> None:
    with pytest.raises(ValueError):
        grant(hospital, codenames=["fly_organisation"], to_user=bob)
    with pytest.raises(ValueError):
        grant(hospital, codenames=["view_organisation"])
