"""Writes of the accounts app: accounts and their approval, projects and their memberships, and the audit
records of authentication."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from importlib import import_module
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext

from accounts import approvals
from accounts.api import tokens
from accounts.choices import AccountStatus, MembershipStatus, ProjectRole, Role
from accounts.models import Organisation, Project, ProjectMembership, User
from accounts.notifications import notify
from accounts.permissions import account_is_usable, project_group_sync, project_groups_create, running_projects_q
from audit.http import client_ip
from audit.services import audit_record


@transaction.atomic
def organisation_get_or_create(*, name: str, kind: str = "hospital") -> Organisation:
    organisation, _ = Organisation.objects.get_or_create(name=name, defaults={"kind": kind})
    return organisation


@transaction.atomic
def account_create_approved(
    *,
    username: str,
    email: str,
    password: str,
    role: Role | str,
    organisation: Organisation,
    first_name: str = "",
    last_name: str = "",
    created_by: User | None = None,
) -> User:
    """Create an account that is already approved (admins and the demo set-up; sign-up goes through
    approval instead). The e-mail address counts as verified: whoever creates the account vouches for it."""
    role = Role(role)
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        first_name=first_name,
        last_name=last_name,
        organisation=organisation,
        role=role,
        status=AccountStatus.APPROVED,
        is_staff=role == Role.ADMIN,
        is_superuser=role == Role.ADMIN,
    )
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    audit_record(action="account_create", actor=created_by, obj=user, detail={"role": role.value, "status": "approved"})
    return user


@transaction.atomic
def account_set_password(*, user: User, password: str, changed_by: User | None = None) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(action="password_reset", actor=changed_by, obj=user)


# --- sign-up and authentication events -------------------------------------------------------------------------


@transaction.atomic
def account_signed_up(*, user: User, request: HttpRequest | None = None) -> None:
    """Record a sign-up (the account is pending; allauth sends the verification e-mail)."""
    audit_record(action="account_signup", obj=user, ip_address=client_ip(request), detail={"status": user.status})


@transaction.atomic
def account_email_verified(*, user: User, request: HttpRequest | None = None) -> None:
    """Record the verification and tell the reviewers (admins and stewards) that an account waits for them."""
    audit_record(action="email_verified", obj=user, ip_address=client_ip(request))
    if user.status == AccountStatus.PENDING:
        reviewers = User.objects.filter(
            status=AccountStatus.APPROVED, is_active=True, role__in=[Role.ADMIN, Role.STEWARD]
        ).values_list("email", flat=True)
        notify(to=reviewers, template="account_pending", context={"applicant": user})


def login_succeeded(*, user: User, request: HttpRequest | None) -> None:
    audit_record(action="login", actor=user, obj=user, ip_address=client_ip(request))


def login_failed(*, login_name: str, request: HttpRequest | None) -> None:
    """A wrong password, an unknown name or a locked-out attempt. The event is about the account when the
    name matches one, so the account's steward sees attacks on it."""
    user = User.objects.filter(username__iexact=login_name).first() if login_name else None
    if user is None and login_name and "@" in login_name:
        user = User.objects.filter(email__iexact=login_name).first()
    audit_record(
        action="login_failed",
        obj=user,
        outcome="failure",
        ip_address=client_ip(request),
        detail={"login": login_name[:150]},
    )


def login_refused(*, user: User, request: HttpRequest | None) -> None:
    """The password was right but the account is not approved (pending, rejected or suspended)."""
    audit_record(
        action="login_refused",
        obj=user,
        outcome="denied",
        ip_address=client_ip(request),
        detail={"status": user.status},
    )


def login_locked_out(*, login_name: str, request: HttpRequest | None) -> None:
    user = User.objects.filter(username__iexact=login_name).first() if login_name else None
    audit_record(
        action="login_lockout",
        obj=user,
        outcome="denied",
        ip_address=client_ip(request),
        detail={"login": login_name[:150]},
    )


def logout_recorded(*, user: User, request: HttpRequest | None) -> None:
    if user is not None and getattr(user, "is_authenticated", False):
        audit_record(action="logout", actor=user, obj=user, ip_address=client_ip(request))


# --- account decisions ---------------------------------------------------------------------------------------------

#: What a person may do follows from these fields of the account (a steward's site from its organisation; an
#: admin's powers from its role or the superuser flag).
PRIVILEGE_FIELDS = ("role", "is_superuser", "organisation_id")


def account_privileges(user: User) -> dict[str, Any]:
    """The account's privilege fields as stored now: read before a change, handed to
    ``account_privileges_changed`` after it."""
    return dict(User.objects.filter(pk=user.pk).values(*PRIVILEGE_FIELDS).first() or {})


def account_privileges_changed(
    *, user: User, before: dict[str, Any], changed_by: User | None, ip_address: str | None = None
) -> int:
    """After any change to an account (approval, the Django admin, the API): when its role, superuser flag or
    organisation changed, revoke its API tokens, so that no token made under the old role acts under the new one
    (a token of a researcher made steward would otherwise approve requests with no second factor ever asked).
    Call it inside the transaction of the change. Returns the number of tokens revoked (audited when any)."""
    after = account_privileges(user)
    if not before or after == before:
        return 0
    changed = sorted(field.removesuffix("_id") for field in PRIVILEGE_FIELDS if before.get(field) != after.get(field))
    return tokens.tokens_revoke_all(
        user=user,
        reason="role_change",
        by=changed_by,
        ip_address=ip_address,
        detail={"changed": changed, "role_before": before.get("role"), "role": after.get("role")},
    )


def _locked_user(user: User) -> User:
    # Two reviewers deciding at once: the second one sees the first one's decision and fails cleanly.
    return User.objects.select_for_update().get(pk=user.pk)


@transaction.atomic
def account_approve(
    *, user: User, organisation: Organisation, role: Role | str, decided_by: User, ip_address: str | None = None
) -> User:
    """Approve a pending account with an organisation and a role. Needs a verified e-mail address."""
    role = Role(role)
    user = _locked_user(user)
    before = account_privileges(user)
    if not approvals.can_approve_account(decided_by, user, organisation=organisation, role=role):
        raise PermissionDenied(gettext("You may not approve this account with this organisation and role."))
    if not EmailAddress.objects.filter(user=user, verified=True).exists():
        raise ValidationError(gettext("The e-mail address of this account is not verified yet."))
    user.status = AccountStatus.APPROVED
    user.status_reason = ""
    user.organisation = organisation
    user.role = role
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["status", "status_reason", "organisation", "role", "is_staff", "is_superuser"])
    audit_record(
        action="account_approve",
        actor=decided_by,
        obj=user,
        ip_address=ip_address,
        detail={"role": role.value, "organisation": organisation.name},
    )
    account_privileges_changed(user=user, before=before, changed_by=decided_by, ip_address=ip_address)
    notify(to=[user.email], template="account_decision", context={"account": user, "decision": "approved"})
    return user


def _account_set_status(
    *, user: User, status: str, reason: str, decided_by: User, action: str, ip_address: str | None, allowed: bool
) -> User:
    if not allowed:
        raise PermissionDenied(gettext("You may not decide on this account."))
    user.status = status
    user.status_reason = reason
    user.save(update_fields=["status", "status_reason"])
    audit_record(action=action, actor=decided_by, obj=user, ip_address=ip_address, detail={"reason": reason})
    notify(to=[user.email], template="account_decision", context={"account": user, "decision": status})
    return user


@transaction.atomic
def account_reject(*, user: User, reason: str, decided_by: User, ip_address: str | None = None) -> User:
    """Reject a pending account, with a reason the person is told."""
    if not reason.strip():
        raise ValidationError(gettext("Give a reason for the rejection."))
    user = _locked_user(user)
    return _account_set_status(
        user=user,
        status=AccountStatus.REJECTED,
        reason=reason.strip(),
        decided_by=decided_by,
        action="account_reject",
        ip_address=ip_address,
        allowed=approvals.can_reject_account(decided_by, user),
    )


@transaction.atomic
def account_suspend(*, user: User, reason: str, decided_by: User, ip_address: str | None = None) -> User:
    """Suspend an approved account. Its open sessions end at their next request (AccessGuardMiddleware)."""
    if not reason.strip():
        raise ValidationError(gettext("Give a reason for the suspension."))
    user = _locked_user(user)
    return _account_set_status(
        user=user,
        status=AccountStatus.SUSPENDED,
        reason=reason.strip(),
        decided_by=decided_by,
        action="account_suspend",
        ip_address=ip_address,
        allowed=user.status == AccountStatus.APPROVED and approvals.can_manage_account(decided_by, user),
    )


@transaction.atomic
def account_reinstate(*, user: User, decided_by: User, ip_address: str | None = None) -> User:
    """Lift a suspension."""
    user = _locked_user(user)
    return _account_set_status(
        user=user,
        status=AccountStatus.APPROVED,
        reason="",
        decided_by=decided_by,
        action="account_reinstate",
        ip_address=ip_address,
        allowed=user.status == AccountStatus.SUSPENDED and approvals.can_manage_account(decided_by, user),
    )


# --- projects and memberships --------------------------------------------------------------------------------------


@transaction.atomic
def project_create(
    *,
    title: str,
    purpose: str,
    approval_number: str,
    principal_investigator: User,
    starts_on: date,
    expires_on: date,
    sources: Iterable[Any],
    created_by: User,
    organisation: Organisation | None = None,
    ip_address: str | None = None,
) -> Project:
    """Open a project (admins and stewards; see ``approvals.can_create_project``). The principal investigator
    becomes its approved owner; the project's role groups are created here, in the same transaction."""
    if not approvals.can_create_project(created_by):
        raise PermissionDenied(gettext("Only admins and data stewards open projects."))
    if principal_investigator.pk == created_by.pk:
        raise ValidationError(gettext("A project is opened for somebody else: you cannot approve your own project."))
    if not account_is_usable(principal_investigator) or principal_investigator.role == Role.PARTNER:
        raise ValidationError(
            gettext("The principal investigator must be an approved researcher, data steward or admin.")
        )
    if expires_on < starts_on:
        raise ValidationError(gettext("The project cannot expire before it starts."))
    source_model = Project._meta.get_field("sources").related_model
    source_pks = [getattr(source, "pk", source) for source in sources]
    source_qs = source_model._default_manager.filter(pk__in=source_pks)
    if len(set(source_pks)) != source_qs.count():
        raise ValidationError(gettext("Unknown source."))
    if not approvals.sources_allowed_for_creator(created_by, source_qs):
        raise PermissionDenied(gettext("A data steward opens projects on its own organisation's sources only."))
    project = Project.objects.create(
        title=title,
        purpose=purpose,
        approval_number=approval_number,
        principal_investigator=principal_investigator,
        organisation=organisation or principal_investigator.organisation,
        starts_on=starts_on,
        expires_on=expires_on,
    )
    project.sources.set(source_qs)
    project_groups_create(project)
    owner = ProjectMembership.objects.create(
        project=project,
        user=principal_investigator,
        role=ProjectRole.OWNER,
        status=MembershipStatus.APPROVED,
        steward_approved_by=created_by,
        decided_at=timezone.now(),
        reason="principal investigator, approved with the project",
    )
    project_group_sync(owner)
    audit_record(
        action="project_create",
        actor=created_by,
        obj=project,
        ip_address=ip_address,
        detail={
            "principal_investigator": principal_investigator.username,
            "sources": sorted(source_qs.values_list("key", flat=True)),
            "starts_on": starts_on.isoformat(),
            "expires_on": expires_on.isoformat(),
        },
    )
    return project


def _default_project_role(user: User) -> ProjectRole:
    return ProjectRole.PARTNER_VIEWER if user.role == Role.PARTNER else ProjectRole.ANALYST


def _membership_approvers(project: Project) -> list[str]:
    owners = User.objects.filter(
        memberships__project=project,
        memberships__role=ProjectRole.OWNER,
        memberships__status=MembershipStatus.APPROVED,
    )
    stewards = User.objects.filter(
        role=Role.STEWARD,
        status=AccountStatus.APPROVED,
        organisation_id__in=approvals.approving_organisation_ids(project),
    )
    return list(owners.values_list("email", flat=True)) + list(stewards.values_list("email", flat=True))


@transaction.atomic
def membership_request(*, project: Project, user: User, ip_address: str | None = None) -> ProjectMembership:
    """Ask to join a running project. A rejected or revoked member may ask again; the approvals start over."""
    if not account_is_usable(user):
        raise PermissionDenied(gettext("Your account is not approved."))
    if not Project.objects.filter(running_projects_q(), pk=project.pk).exists():
        raise ValidationError(gettext("This project is not running."))
    membership, created = ProjectMembership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": _default_project_role(user)}
    )
    if not created:
        if membership.status in (MembershipStatus.APPROVED, MembershipStatus.REQUESTED):
            raise ValidationError(gettext("You are already a member of this project or have asked to join it."))
        membership.status = MembershipStatus.REQUESTED
        membership.role = _default_project_role(user)
        membership.owner_approved_by = None
        membership.steward_approved_by = None
        membership.decided_at = None
        membership.reason = ""
        membership.save()
    audit_record(
        action="membership_request", actor=user, obj=membership, ip_address=ip_address, detail={"role": membership.role}
    )
    notify(to=_membership_approvers(project), template="membership_requested", context={"membership": membership})
    return membership


def _locked_membership(membership: ProjectMembership) -> ProjectMembership:
    # Owner and steward may click at the same moment: each sees the other's approval once it commits.
    return ProjectMembership.objects.select_for_update().select_related("project", "user").get(pk=membership.pk)


@transaction.atomic
def membership_approve(
    *, membership: ProjectMembership, approver: User, ip_address: str | None = None
) -> ProjectMembership:
    """Give the approver's approval: the owner's step or the steward's step, whichever the approver may give.
    The second of the two approvals makes the membership approved and the member joins the role's group."""
    membership = _locked_membership(membership)
    if membership.user_id == approver.pk:
        raise PermissionDenied(gettext("Nobody approves their own request."))
    if approvals.can_approve_owner_step(approver, membership):
        membership.owner_approved_by = approver
        step = "owner"
    elif approvals.can_approve_steward_step(approver, membership):
        membership.steward_approved_by = approver
        step = "steward"
    else:
        raise PermissionDenied(gettext("There is no approval of yours to give on this request."))
    final = membership.owner_approved_by_id is not None and membership.steward_approved_by_id is not None
    if final:
        membership.status = MembershipStatus.APPROVED
        membership.decided_at = timezone.now()
    membership.save()
    project_group_sync(membership)
    audit_record(
        action="membership_approve",
        actor=approver,
        obj=membership,
        ip_address=ip_address,
        detail={"step": step, "final": final, "project": membership.project_id, "member": membership.user.username},
    )
    if final:
        notify(
            to=[membership.user.email],
            template="membership_decision",
            context={"membership": membership, "decision": "approved"},
        )
    return membership


@transaction.atomic
def membership_reject(
    *, membership: ProjectMembership, rejecter: User, reason: str, ip_address: str | None = None
) -> ProjectMembership:
    """Refuse a request (the owner or an approving steward), with a reason the person is told."""
    return _membership_close(
        membership=membership,
        by=rejecter,
        reason=reason,
        ip_address=ip_address,
        status=MembershipStatus.REJECTED,
        action="membership_reject",
        decision="rejected",
        allowed=approvals.can_reject_membership,
        reason_missing=gettext("Give a reason for the rejection."),
        not_allowed=gettext("You may not reject this request."),
    )


@transaction.atomic
def membership_revoke(
    *, membership: ProjectMembership, revoked_by: User, reason: str, ip_address: str | None = None
) -> ProjectMembership:
    """End an approved membership before the project expires (owner, approving steward or admin)."""
    return _membership_close(
        membership=membership,
        by=revoked_by,
        reason=reason,
        ip_address=ip_address,
        status=MembershipStatus.REVOKED,
        action="membership_revoke",
        decision="revoked",
        allowed=approvals.can_revoke_membership,
        reason_missing=gettext("Give a reason for the revocation."),
        not_allowed=gettext("You may not revoke this membership."),
    )


def _membership_close(
    *,
    membership: ProjectMembership,
    by: User,
    reason: str,
    ip_address: str | None,
    status: MembershipStatus,
    action: str,
    decision: str,
    allowed: Callable[[User, ProjectMembership], bool],
    reason_missing: str,
    not_allowed: str,
) -> ProjectMembership:
    """Reject or revoke: a reason is required, the decision is audited and the person is told."""
    if not reason.strip():
        raise ValidationError(reason_missing)
    membership = _locked_membership(membership)
    if not allowed(by, membership):
        raise PermissionDenied(not_allowed)
    membership.status = status
    membership.reason = reason.strip()
    membership.decided_at = timezone.now()
    membership.save(update_fields=["status", "reason", "decided_at"])
    project_group_sync(membership)
    audit_record(
        action=action,
        actor=by,
        obj=membership,
        ip_address=ip_address,
        detail={"reason": membership.reason, "project": membership.project_id, "member": membership.user.username},
    )
    notify(
        to=[membership.user.email],
        template="membership_decision",
        context={"membership": membership, "decision": decision},
    )
    return membership


# --- sessions ------------------------------------------------------------------------------------------------------


def sessions_clear_expired() -> int:
    """Delete the sessions past their expiry (signed out by idling or closing the browser, never by a request
    again) through the session engine, as Django's ``clearsessions`` does; returns how many expired rows there
    were. Engines that expire their own entries (cache, signed cookies) have nothing to delete."""
    expired = 0
    if settings.SESSION_ENGINE in ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"):
        expired = Session.objects.filter(expire_date__lt=timezone.now()).count()
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    return expired
