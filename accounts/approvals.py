"""Who may decide what: the rules of account and membership approval, as plain predicates.

Services enforce them (and raise); views and templates use them to show only the buttons that would work.
Common to all: nobody decides on their own account or their own request.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from accounts.choices import AccountStatus, MembershipStatus, ProjectRole, Role
from accounts.models import Organisation, Project, ProjectMembership, User
from accounts.permissions import account_is_usable, is_admin, is_steward, running_projects_q

# Roles a data steward may give when approving an account; steward and admin accounts are for admins to give.
STEWARD_GRANTABLE_ROLES = (Role.RESEARCHER, Role.PARTNER)


def can_review_accounts(actor: User | AnonymousUser) -> bool:
    """Admins and data stewards see the pending-account queue."""
    return is_admin(actor) or is_steward(actor)


def can_approve_account(actor: User, user: User, *, organisation: Organisation, role: str) -> bool:
    """Admins approve anybody into any organisation and role; stewards only into their own organisation, as
    researcher or partner."""
    if actor.pk == user.pk or user.status != AccountStatus.PENDING:
        return False
    if is_admin(actor):
        return True
    return is_steward(actor) and organisation.pk == actor.organisation_id and role in STEWARD_GRANTABLE_ROLES


def can_reject_account(actor: User, user: User) -> bool:
    return actor.pk != user.pk and user.status == AccountStatus.PENDING and can_review_accounts(actor)


def can_manage_account(actor: User, user: User) -> bool:
    """Suspend or reinstate: admins anybody but themselves; stewards the researchers and partners of their
    organisation."""
    if actor.pk == user.pk:
        return False
    if is_admin(actor):
        return True
    return is_steward(actor) and user.organisation_id == actor.organisation_id and user.role in STEWARD_GRANTABLE_ROLES


def approving_organisation_ids(project: Project) -> set[int]:
    """The organisations whose stewards approve joining the project: those owning one of its sources, or the
    project's own organisation when it has no source yet."""
    ids = {pk for pk in project.sources.values_list("organisation_id", flat=True) if pk is not None}
    if not ids and project.organisation_id:
        ids.add(project.organisation_id)
    return ids


def is_project_owner(actor: User, project: Project) -> bool:
    """An approved owner of a running project."""
    return (
        account_is_usable(actor)
        and Project.objects.filter(running_projects_q(), pk=project.pk).exists()
        and ProjectMembership.objects.filter(
            project=project, user=actor, role=ProjectRole.OWNER, status=MembershipStatus.APPROVED
        ).exists()
    )


def is_project_steward(actor: User, project: Project) -> bool:
    """A data steward of an organisation owning one of the project's sources."""
    return is_steward(actor) and actor.organisation_id in approving_organisation_ids(project)


def can_approve_owner_step(actor: User, membership: ProjectMembership) -> bool:
    return (
        membership.status == MembershipStatus.REQUESTED
        and membership.user_id != actor.pk
        and membership.owner_approved_by_id is None
        and is_project_owner(actor, membership.project)
    )


def can_approve_steward_step(actor: User, membership: ProjectMembership) -> bool:
    # The two approvals come from two people: an owner who is also a steward fills one step only.
    return (
        membership.status == MembershipStatus.REQUESTED
        and membership.user_id != actor.pk
        and membership.steward_approved_by_id is None
        and membership.owner_approved_by_id != actor.pk
        and is_project_steward(actor, membership.project)
    )


def can_reject_membership(actor: User, membership: ProjectMembership) -> bool:
    return (
        membership.status == MembershipStatus.REQUESTED
        and membership.user_id != actor.pk
        and (is_project_owner(actor, membership.project) or is_project_steward(actor, membership.project))
    )


def can_revoke_membership(actor: User, membership: ProjectMembership) -> bool:
    return (
        membership.status == MembershipStatus.APPROVED
        and membership.user_id != actor.pk
        and (
            is_admin(actor)
            or is_project_owner(actor, membership.project)
            or is_project_steward(actor, membership.project)
        )
    )


def can_create_project(actor: User | AnonymousUser) -> bool:
    """Projects are created by admins and data stewards, naming a principal investigator who becomes the owner.
    Creating one is itself an approval (it gives the investigator access to the sources), so a researcher
    cannot create one for themselves."""
    return is_admin(actor) or is_steward(actor)


def sources_allowed_for_creator(actor: User, sources: QuerySet) -> bool:
    """A steward opens projects on its own organisation's sources only; an admin on any."""
    if is_admin(actor):
        return True
    return is_steward(actor) and not sources.exclude(organisation_id=actor.organisation_id).exists()
