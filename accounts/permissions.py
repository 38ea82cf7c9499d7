"""The permission layer: "may this user do X to this object?", for every app.

Object permissions are django-guardian's, on any model. They reach a user two ways:

* directly (``grant(obj, codenames=[...], to_user=bob)``) — kept while the account is approved;
* through a project (``grant(obj, codenames=[...], to_project=project)``) — stored on the project's per-role
  guardian groups (owners, analysts, partner viewers; see ``ProjectGroup``). Approved members sit in the group
  of their role. A group's permissions count only while its project runs (``starts_on <= today <=
  expires_on``) and the membership is approved, so expiry ends access by itself, with no job to run.

Everybody asks through ``filter_by_permission`` (lists) or ``user_can`` (one object); the raw
``guardian.shortcuts.get_objects_for_user`` is banned by ruff everywhere else, because it would honour expired
project groups and ignore the account's status. Admins (approved, role admin) see everything; pending,
rejected and suspended accounts see nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from guardian import shortcuts as guardian_shortcuts
from guardian.models import GroupObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from accounts.choices import AccountStatus, MembershipStatus, ProjectRole, Role
from accounts.models import Project, ProjectGroup, ProjectMembership, User

M = TypeVar("M", bound=models.Model)

# What each project role may do to the project itself. Objects shared with a project get the codenames the
# sharing app chooses, per role (see ``grant``).
PROJECT_ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    ProjectRole.OWNER: ("view_project", "change_project", "run_project"),
    ProjectRole.ANALYST: ("view_project", "run_project"),
    ProjectRole.PARTNER_VIEWER: ("view_project",),
}


def account_is_usable(user: User | AnonymousUser) -> bool:
    """An authenticated, active, approved account. Everything else sees nothing."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and getattr(user, "status", None) == AccountStatus.APPROVED
    )


def is_admin(user: User | AnonymousUser) -> bool:
    """An approved admin: sees every object. A superuser flag alone is not enough (a pending superuser made by
    ``createsuperuser`` stays locked out until approved)."""
    return account_is_usable(user) and (user.role == Role.ADMIN or user.is_superuser)


def is_steward(user: User | AnonymousUser) -> bool:
    """An approved data steward of an organisation."""
    return account_is_usable(user) and user.role == Role.STEWARD and user.organisation_id is not None


def mfa_enrolment_missing(user: User | AnonymousUser) -> bool:
    """A data steward or admin (``SOYANG_MFA_REQUIRED_ROLES``) who has no TOTP authenticator yet. The one rule
    the pages (``AccessGuardMiddleware``) and the API (``IsApprovedAccount``) both enforce: such an account acts
    on nothing until it enrols — whatever made it a steward (approval, the Django admin, a migration)."""
    if not getattr(user, "is_authenticated", False) or user.role not in settings.SOYANG_MFA_REQUIRED_ROLES:
        return False
    return not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def running_projects_q(prefix: str = "") -> Q:
    """Projects running today (the portal's time zone): between their start and expiry dates, both included."""
    today = timezone.localdate()
    return Q(**{f"{prefix}starts_on__lte": today, f"{prefix}expires_on__gte": today})


def projects_for_user(user: User | AnonymousUser) -> QuerySet[Project]:
    """Projects the user works in today: an approved membership of a running project. Admins: every running
    project."""
    if not account_is_usable(user):
        return Project.objects.none()
    running = Project.objects.filter(running_projects_q())
    if is_admin(user):
        return running
    return running.filter(memberships__user=user, memberships__status=MembershipStatus.APPROVED).distinct()


def project_sources_for_user(user: User | AnonymousUser, project: Project) -> QuerySet:
    """The sources (warehouse.Source) the user may query through this project: all of the project's sources
    while the user works in it, none otherwise."""
    if projects_for_user(user).filter(pk=project.pk).exists():
        return project.sources.all()
    return project.sources.none()


def project_role_for_user(user: User | AnonymousUser, project: Project) -> str | None:
    """The user's role in a running project (``ProjectRole``), or None when they have no access today."""
    if not projects_for_user(user).filter(pk=project.pk).exists():
        return None
    membership = ProjectMembership.objects.filter(project=project, user=user, status=MembershipStatus.APPROVED).first()
    return membership.role if membership else None


def _bare_codename(codename: str) -> str:
    # Accept "view_project" and "accounts.view_project" alike.
    return codename.rsplit(".", 1)[-1]


def _running_group_ids(user: User | AnonymousUser) -> QuerySet:
    """Ids of the user's project groups whose project runs today and whose membership is approved. The
    membership check is belt and braces: services keep group membership in step with approvals."""
    return ProjectGroup.objects.filter(
        running_projects_q("project__"),
        group__user=user,
        project__memberships__user=user,
        project__memberships__status=MembershipStatus.APPROVED,
    ).values("group_id")


def _object_pk_expression(model: type[models.Model]) -> Any:
    # guardian stores object ids as text; compare them as the model's primary key type.
    pk_field = model._meta.pk
    if isinstance(pk_field, models.IntegerField):
        return Cast("object_pk", output_field=models.BigIntegerField())
    if isinstance(pk_field, models.UUIDField):
        return Cast("object_pk", output_field=models.UUIDField())
    return models.F("object_pk")


def filter_by_permission(
    *, queryset: QuerySet[M], user: User | AnonymousUser, codename: str, granted_only: bool = False
) -> QuerySet[M]:
    """The objects of ``queryset`` on which ``user`` holds ``codename`` (e.g. ``run_cohortdefinition``).

    The one place that reads guardian's tables for lists; use it (or ``user_can``) instead of
    ``get_objects_for_user``. Model-wide permissions are deliberately ignored: access is per object. Admins see
    every object; ``granted_only`` asks for what was granted to the user or their projects even for an admin
    ("shared with me" is what somebody shared, not what an admin may open).
    """
    if not account_is_usable(user):
        return queryset.none()
    if is_admin(user) and not granted_only:
        return queryset
    model = queryset.model
    codename = _bare_codename(codename)
    content_type = ContentType.objects.get_for_model(model)
    # The one allowed call: direct user permissions only. Group permissions are read below instead, because
    # guardian would count the groups of expired projects too.
    direct = guardian_shortcuts.get_objects_for_user(  # noqa: TID251
        user,
        f"{content_type.app_label}.{codename}",
        klass=queryset,
        use_groups=False,
        with_superuser=False,
        accept_global_perms=False,
    )
    through_projects = (
        GroupObjectPermission.objects.filter(
            content_type=content_type,
            permission__codename=codename,
            group_id__in=_running_group_ids(user),
        )
        .annotate(object_key=_object_pk_expression(model))
        .values("object_key")
    )
    return queryset.filter(Q(pk__in=direct.values("pk")) | Q(pk__in=through_projects))


def user_can(user: User | AnonymousUser, codename: str, obj: models.Model | None) -> bool:
    """Whether ``user`` holds ``codename`` on ``obj``, by the same rules as ``filter_by_permission``."""
    if obj is None or obj.pk is None:
        return False
    queryset = type(obj)._default_manager.filter(pk=obj.pk)
    return filter_by_permission(queryset=queryset, user=user, codename=codename).exists()


def _permission(obj: models.Model, codename: str) -> Permission:
    content_type = ContentType.objects.get_for_model(type(obj))
    try:
        return Permission.objects.get(content_type=content_type, codename=_bare_codename(codename))
    except Permission.DoesNotExist:
        raise ValueError(f"{content_type.app_label}.{_bare_codename(codename)} is not a permission") from None


def _project_groups(project: Project, project_roles: Iterable[str] | None) -> list[Group]:
    roles = [ProjectRole(role) for role in project_roles] if project_roles is not None else list(ProjectRole)
    groups = [pg.group for pg in ProjectGroup.objects.filter(project=project, role__in=roles).select_related("group")]
    if len(groups) != len(roles):
        raise ValueError(f"project {project.pk} lacks its groups; create projects with accounts.services")
    return groups


def _check_target(to_user: User | None, to_project: Project | None) -> None:
    if (to_user is None) == (to_project is None):
        raise ValueError("give exactly one of the user or the project")


@transaction.atomic
def grant(
    obj: models.Model,
    *,
    codenames: Iterable[str],
    to_user: User | None = None,
    to_project: Project | None = None,
    project_roles: Iterable[str] | None = None,
) -> None:
    """Give object permissions on ``obj`` to one user, or to the members of a project.

    ``project_roles`` narrows a project grant to some roles (e.g. ``["owner", "analyst"]`` so that partner
    viewers only view); by default every role gets them. The caller records the audit event of its own
    action (sharing a definition, say): this is the mechanism, not the decision.
    """
    _check_target(to_user, to_project)
    permissions = [_permission(obj, codename) for codename in codenames]
    targets: list[Any] = [to_user] if to_user is not None else _project_groups(to_project, project_roles)
    for target in targets:
        for permission in permissions:
            assign_perm(permission, target, obj)


@transaction.atomic
def revoke(
    obj: models.Model,
    *,
    codenames: Iterable[str],
    from_user: User | None = None,
    from_project: Project | None = None,
    project_roles: Iterable[str] | None = None,
) -> None:
    """Take back what ``grant`` gave (same arguments, ``from_`` instead of ``to_``). Revoking what was never
    granted is not an error."""
    _check_target(from_user, from_project)
    permissions = [_permission(obj, codename) for codename in codenames]
    targets: list[Any] = [from_user] if from_user is not None else _project_groups(from_project, project_roles)
    for target in targets:
        for permission in permissions:
            remove_perm(f"{permission.content_type.app_label}.{permission.codename}", target, obj)


def project_groups_create(project: Project) -> None:
    """Create the project's per-role groups with their permissions on the project. Called by ``project_create``
    in the same transaction."""
    for role, codenames in PROJECT_ROLE_PERMISSIONS.items():
        group = Group.objects.create(name=f"project:{project.pk}:{role}")
        ProjectGroup.objects.create(project=project, role=role, group=group)
        for codename in codenames:
            assign_perm(_permission(project, codename), group, project)


def project_group_sync(membership: ProjectMembership) -> None:
    """Put the member in the group of their role if the membership is approved; take them out of every group
    of the project otherwise. Called by the membership services in their transaction."""
    groups = ProjectGroup.objects.filter(project=membership.project).select_related("group")
    for project_group in groups:
        in_group = membership.status == MembershipStatus.APPROVED and project_group.role == membership.role
        if in_group:
            project_group.group.user_set.add(membership.user)
        else:
            project_group.group.user_set.remove(membership.user)
