"""Reads of the disclosure app: a site's policy, the rule it gives a role, and the exact-count grants."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from accounts.choices import MembershipStatus, ProjectRole, Role
from accounts.models import ProjectMembership, User
from accounts.permissions import account_is_usable, is_admin, running_projects_q
from disclosure.models import DisclosurePolicy, ExactCountGrant
from disclosure.permissions import can_read_exact_grants
from disclosure.ptable import cached_ptable
from disclosure.rules import DEFAULT_MIN_CELL, DEFAULT_ROUND_TO, PrivacyRule
from warehouse.models import Source


def policy_for(source: Source) -> DisclosurePolicy:
    """The site's disclosure policy; a site nobody has configured gets the defaults (an unsaved policy).

    One query per source instance at most: Django keeps the related row (or its absence) on the instance, and
    ``select_related("disclosure_policy")`` saves even that one.
    """
    try:
        return source.disclosure_policy
    except DisclosurePolicy.DoesNotExist:
        return DisclosurePolicy(source=source)


def rule_for(*, source: Source, role: str, grant: int | None = None) -> PrivacyRule:
    """The rule of a source for a role: the source's minimum cell size for everyone, every count perturbed by
    the source's ptable, and its rounding on top for the roles it marks aggregate-only (pharma partners by
    default).

    ``grant``: the id of an exact-count grant in force for the reader at this source (found by the caller,
    ``exact_grant_for``): the counts are then exact, still thresholded. Partners never get exact counts, grant
    or not.
    """
    policy = policy_for(source)
    min_cell = max(1, int(policy.min_cell_size or DEFAULT_MIN_CELL))
    roles = policy.aggregate_only_roles
    aggregate_only = set(roles if roles is not None else [Role.PARTNER.value])
    round_to = max(1, int(policy.round_to or DEFAULT_ROUND_TO) if role in aggregate_only else 1)
    if grant is not None and role != Role.PARTNER.value:
        return PrivacyRule(min_cell=min_cell, round_to=round_to, grant=grant)
    return PrivacyRule(min_cell=min_cell, round_to=round_to, ptable=cached_ptable(policy.ptable_parameters()))


# --- exact-count grants ----------------------------------------------------------------------------------------


def grants_in_force() -> QuerySet[ExactCountGrant]:
    """Grants in force today (the portal's time zone): not revoked, their last day not passed, their project
    running. Read at every count, so that a revocation, the end date or the project's end applies at once."""
    return ExactCountGrant.objects.filter(
        running_projects_q("project__"), revoked_at__isnull=True, ends_at__gte=timezone.localdate()
    )


def _grants_reaching(user: User | AnonymousUser) -> QuerySet[ExactCountGrant]:
    """The grants in force whose counts ``user`` reads exact: those of the projects the user is an approved
    member of today, in a role that is not a partner's. Partners never get exact counts, by their account's role
    or their role in the project. Admins are not members by being admins: a project's grant is for the people
    who work in it, so an admin reads perturbed counts unless they are a member themselves."""
    if not account_is_usable(user) or user.role == Role.PARTNER:
        return ExactCountGrant.objects.none()
    memberships = ProjectMembership.objects.filter(user=user, status=MembershipStatus.APPROVED).exclude(
        role=ProjectRole.PARTNER_VIEWER
    )
    return grants_in_force().filter(project_id__in=memberships.values("project_id"))


def exact_grants_for_user(user: User | AnonymousUser) -> dict[tuple[int, int], int]:
    """Every grant reaching ``user`` (``_grants_reaching``), as ``{(project id, source id): grant id}``, in one
    query: for lists of many definitions (``cohorts.runs.selectors.latest_counts``). Should two grants of a
    project at a site be in force, the newest is named."""
    grants: dict[tuple[int, int], int] = {}
    for pk, project_id, source_id in (
        _grants_reaching(user).order_by("granted_at", "id").values_list("pk", "project_id", "source_id")
    ):
        grants[(project_id, source_id)] = pk
    return grants


def exact_grants_for(*, user: User | AnonymousUser, project_id: int | None) -> dict[int, int]:
    """The grants reaching ``user`` for the counts of a definition of ``project_id``, as ``{source id: grant id}``
    (empty for a definition without a project: a grant is always a project's)."""
    if project_id is None:
        return {}
    return {source_id: pk for (project, source_id), pk in exact_grants_for_user(user).items() if project == project_id}


def exact_grant_for(*, user: User | AnonymousUser, project_id: int | None, source: Source) -> int | None:
    """The id of the grant that makes ``user``'s counts of a definition of ``project_id`` exact at ``source``, or
    None: then ``rule_for(source=source, role=user.role, grant=...)`` perturbs them."""
    return exact_grants_for(user=user, project_id=project_id).get(source.pk)


def exact_grants_visible_to(user: User | AnonymousUser) -> QuerySet[ExactCountGrant]:
    """The grants a user may list, in force or not: admins every site's, stewards their organisation's sites',
    nobody else any (``can_read_exact_grants``)."""
    if is_admin(user):
        queryset = ExactCountGrant.objects.all()
    elif can_read_exact_grants(user):
        queryset = ExactCountGrant.objects.filter(source__organisation_id=user.organisation_id)
    else:
        return ExactCountGrant.objects.none()
    return queryset.select_related("project", "source", "granted_by", "revoked_by").order_by("-granted_at", "-id")


def exact_grant_state(grant: ExactCountGrant) -> str:
    """One word for a grant: revoked, ended (its date or its project's end passed), or in force."""
    if grant.revoked_at is not None:
        return "revoked"
    today = timezone.localdate()
    if grant.ends_at < today or not grant.project.starts_on <= today <= grant.project.expires_on:
        return "ended"
    return "in force"
