"""Reads of the accounts app. Objects a user may not see raise Http404, exactly like missing ones."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from accounts import approvals
from accounts.choices import AccountStatus, MembershipStatus
from accounts.models import Project, ProjectMembership, User
from accounts.permissions import account_is_usable, is_admin, is_steward, projects_for_user, running_projects_q


def projects_stewarded_by(user: User) -> QuerySet[Project]:
    """Projects whose joining this steward approves (any dates: stewards keep oversight after expiry)."""
    if not is_steward(user):
        return Project.objects.none()
    return Project.objects.filter(
        Q(sources__organisation_id=user.organisation_id) | Q(sources__isnull=True, organisation_id=user.organisation_id)
    ).distinct()


def project_visible_q(user: User) -> QuerySet[Project]:
    """Every project whose page the user may open: admins all; members of running projects; stewards of the
    projects on their organisation's sources."""
    if not account_is_usable(user):
        return Project.objects.none()
    if is_admin(user):
        return Project.objects.all()
    member_of = projects_for_user(user).values("pk")
    stewarded = projects_stewarded_by(user).values("pk")
    return Project.objects.filter(Q(pk__in=member_of) | Q(pk__in=stewarded))


def project_get_for_user(*, user: User, pk: int) -> Project:
    """The project, or Http404 when it does not exist or the user may not see it (e.g. it has expired)."""
    project = project_visible_q(user).filter(pk=pk).first()
    if project is None:
        raise Http404("no such project")
    return project


def project_join_candidates(user: User) -> QuerySet[Project]:
    """Running projects an approved user may ask to join: titles only are shown, so that people can find their
    project; nothing inside is visible before the two approvals."""
    if not account_is_usable(user):
        return Project.objects.none()
    taken = ProjectMembership.objects.filter(
        user=user, status__in=[MembershipStatus.APPROVED, MembershipStatus.REQUESTED]
    ).values("project_id")
    return Project.objects.filter(running_projects_q()).exclude(pk__in=taken).select_related("principal_investigator")


def project_joinable_get(*, user: User, pk: int) -> Project:
    project = Project.objects.filter(running_projects_q(), pk=pk).first()
    if project is None or not account_is_usable(user):
        raise Http404("no such project")
    return project


def memberships_of_user(user: User) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(user=user).select_related("project").order_by("-requested_at")


def membership_requests_awaiting(user: User) -> list[ProjectMembership]:
    """Requests on which the user has an approval to give (owner's or steward's step)."""
    if not account_is_usable(user):
        return []
    candidates = ProjectMembership.objects.filter(status=MembershipStatus.REQUESTED).exclude(user=user)
    if not is_admin(user):
        owned = ProjectMembership.objects.filter(user=user, role="owner", status=MembershipStatus.APPROVED).values(
            "project_id"
        )
        candidates = candidates.filter(
            Q(project_id__in=owned) | Q(project_id__in=projects_stewarded_by(user).values("pk"))
        )
    candidates = candidates.select_related("project", "user", "owner_approved_by", "steward_approved_by")
    return [
        membership
        for membership in candidates.order_by("requested_at")
        if approvals.can_approve_owner_step(user, membership) or approvals.can_approve_steward_step(user, membership)
    ]


def membership_get_for_decider(*, user: User, pk: int) -> ProjectMembership:
    """A membership the user may see in order to decide on it: a project they may see, or 404."""
    membership = ProjectMembership.objects.select_related("project", "user").filter(pk=pk).first()
    if membership is None or not project_visible_q(user).filter(pk=membership.project_id).exists():
        raise Http404("no such request")
    return membership


def accounts_pending_review(user: User) -> QuerySet[User]:
    """Pending accounts, with whether their e-mail is verified, for admins and stewards (who approve into their
    own organisation only). Others get nothing."""
    if not approvals.can_review_accounts(user):
        return User.objects.none()
    verified = EmailAddress.objects.filter(user=OuterRef("pk"), verified=True)
    return (
        User.objects.filter(status=AccountStatus.PENDING)
        .exclude(pk=user.pk)
        .annotate(email_verified=Exists(verified))
        .order_by("date_joined")
    )


def accounts_managed_by(user: User) -> QuerySet[User]:
    """Approved and suspended accounts the user may suspend or reinstate."""
    if is_admin(user):
        qs = User.objects.all()
    elif is_steward(user):
        qs = User.objects.filter(organisation_id=user.organisation_id, role__in=approvals.STEWARD_GRANTABLE_ROLES)
    else:
        return User.objects.none()
    return (
        qs.filter(status__in=[AccountStatus.APPROVED, AccountStatus.SUSPENDED])
        .exclude(pk=user.pk)
        .select_related("organisation")
        .order_by("username")
    )


def account_get_for_reviewer(*, user: User, pk: int) -> User:
    """A pending or managed account the reviewer may decide on, or 404."""
    account = accounts_pending_review(user).filter(pk=pk).first() or accounts_managed_by(user).filter(pk=pk).first()
    if account is None:
        raise Http404("no such account")
    return account
