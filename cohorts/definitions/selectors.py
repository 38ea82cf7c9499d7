"""Reads of cohort definitions as a user may see them: lists, one definition, versions, shares."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Lower
from django.http import Http404
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.choices import AccountStatus, MembershipStatus
from accounts.models import Project, ProjectGroup, User
from accounts.permissions import (
    account_is_usable,
    filter_by_permission,
    projects_for_user,
)
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion

VIEW = "view_cohortdefinition"
RUN = "run_cohortdefinition"


#: Sort keys of the definitions list: what the page offers → ORDER BY (ties broken by id, newest first).
DEFINITION_SORTS: dict[str, tuple[str, ...]] = {
    "-updated": ("-updated_at", "-id"),
    "updated": ("updated_at", "id"),
    "name": ("name_lower", "-id"),
    "-name": ("-name_lower", "-id"),
    "owner": ("owner__username", "-updated_at", "-id"),
    "project": ("project__title", "-updated_at", "-id"),
}


def definition_create_allowed(user: User) -> bool:
    """Researchers, stewards and admins write definitions; pharma partners only use those shared with them."""
    return account_is_usable(user) and user.role != "partner"


def definitions_for_user(user: User, *, project: Any = None, search: str = "") -> QuerySet[CohortDefinition]:
    """The definitions the user may view (own, shared with them, or shared with a running project of theirs),
    newest first; narrowed to one project and to a name containing ``search`` when given."""
    queryset = filter_by_permission(queryset=CohortDefinition.objects.select_related("owner"), user=user, codename=VIEW)
    if project is not None:
        queryset = queryset.filter(project=project)
    if search.strip():
        queryset = queryset.filter(Q(name__icontains=search.strip()) | Q(description__icontains=search.strip()))
    return queryset.order_by("-updated_at", "-id")


def definitions_shared_with_user(user: User) -> QuerySet[CohortDefinition]:
    """Definitions somebody else shared with the user or with a running project of theirs, newest first; for an
    admin too only what was shared, not every definition an admin may open."""
    queryset = CohortDefinition.objects.select_related("owner", "project").exclude(owner=user)
    return filter_by_permission(queryset=queryset, user=user, codename=VIEW, granted_only=True).order_by(
        "-updated_at", "-id"
    )


def definition_get_for_user(user: User, pk: int, codename: str = VIEW) -> CohortDefinition:
    """The definition ``pk`` if the user holds ``codename`` on it; Http404 otherwise, as for a missing one."""
    queryset = filter_by_permission(queryset=CohortDefinition.objects.all(), user=user, codename=codename)
    definition = queryset.select_related("owner").filter(pk=pk).first()
    if definition is None:
        raise Http404("No such cohort definition.")
    return definition


def definitions_listed_for_user(
    user: User, *, project: Any = None, search: str = "", owner: str = "", sort: str = "-updated"
) -> QuerySet[CohortDefinition]:
    """The definitions the user may view, for the list page: narrowed (project, text in the name or description,
    ``owner`` = "me" / "others" / a user name), sorted, and annotated in the same query with the latest version
    number, its author and time — so a page of 50 costs a fixed number of queries, not one per row."""
    latest = CohortDefinitionVersion.objects.filter(definition=OuterRef("pk")).order_by("-number")
    queryset = (
        definitions_for_user(user, project=project, search=search)
        .select_related("project")
        .annotate(
            latest_number=Subquery(latest.values("number")[:1]),
            latest_author=Subquery(latest.values("author__username")[:1]),
            latest_saved_at=Subquery(latest.values("created_at")[:1]),
            name_lower=Lower("name"),
        )
    )
    if owner == "me":
        queryset = queryset.filter(owner=user)
    elif owner == "others":
        queryset = queryset.exclude(owner=user)
    elif owner:
        queryset = queryset.filter(owner__username__iexact=owner)
    return queryset.order_by(*DEFINITION_SORTS.get(sort, DEFINITION_SORTS["-updated"]))


def definition_versions(definition: CohortDefinition) -> QuerySet[CohortDefinitionVersion]:
    """Every version of a definition the caller already reached through ``definition_get_for_user``, newest
    first, with its author."""
    return definition.versions.select_related("author").order_by("-number")


def definition_version_get(definition: CohortDefinition, number: Any) -> CohortDefinitionVersion:
    """Version ``number`` of a definition the caller may view; Http404 when there is none."""
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise Http404("No such version.") from None
    version = definition.versions.select_related("author").filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


def definition_shares(definition: CohortDefinition) -> dict[str, list[Any]]:
    """Who the definition is shared with: ``projects`` whose groups hold its view permission and ``users``
    holding it directly (the owner excluded: owning is not a share). For people who may share it."""
    content_type = ContentType.objects.get_for_model(CohortDefinition)
    object_pk = str(definition.pk)
    group_ids = GroupObjectPermission.objects.filter(
        content_type=content_type, object_pk=object_pk, permission__codename=VIEW
    ).values("group_id")
    project_ids = ProjectGroup.objects.filter(group_id__in=group_ids).values("project_id")
    user_ids = UserObjectPermission.objects.filter(
        content_type=content_type, object_pk=object_pk, permission__codename=VIEW
    ).values("user_id")
    users = User.objects.filter(pk__in=user_ids).exclude(pk=definition.owner_id).order_by("username")
    return {"projects": list(Project.objects.filter(pk__in=project_ids).order_by("title")), "users": list(users)}


def share_candidates(user: User, definition: CohortDefinition) -> dict[str, QuerySet[Any]]:
    """Whom ``user`` may share the definition with: projects they work in (its own project only, when it has
    one) and the approved people of those projects (themselves and the owner left out)."""
    projects = projects_for_user(user)
    if definition.project_id is not None:
        projects = projects.filter(pk=definition.project_id)
    people = (
        User.objects.filter(
            memberships__project__in=projects.values("pk"), memberships__status=MembershipStatus.APPROVED
        )
        .filter(status=AccountStatus.APPROVED, is_active=True)
        .exclude(pk__in=[user.pk, definition.owner_id])
        .distinct()
        .order_by("username")
    )
    return {"projects": projects.order_by("title"), "users": people}
