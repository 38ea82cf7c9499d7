"""Writes of the disclosure app: a site steward grants a project exact counts at the site, or revokes the grant.

Each runs in one transaction with its audit event, checks who acts before anything else, and refuses bad input
with a message that says what to change; a refusal writes nothing.
"""

from __future__ import annotations

from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.choices import MembershipStatus
from accounts.models import Project, ProjectMembership, User
from accounts.permissions import mfa_enrolment_missing
from audit.services import audit_record
from disclosure.models import ExactCountGrant
from disclosure.permissions import can_manage_exact_grants
from disclosure.selectors import grants_in_force
from warehouse.models import Source


def _check_steward(user: User, source: Source) -> None:
    if not can_manage_exact_grants(user, source):
        raise PermissionDenied(_("Only a data steward of the site's organisation grants or revokes exact counts."))
    if mfa_enrolment_missing(user):
        raise PermissionDenied(_("Enrol an authenticator app before granting or revoking exact counts."))


@transaction.atomic
def grant_exact_counts(
    *,
    project: Project,
    source: Source,
    reason: str,
    ends_at: date,
    granted_by: User,
    ip_address: str | None = None,
) -> ExactCountGrant:
    """Make ``project``'s counts at ``source`` exact (still thresholded) for its members until ``ends_at`` (the
    last day, in the future, not after the project's own end). ``reason`` says why, with the IRB protocol.

    A steward who is a member of the project (or its principal investigator) may not grant it: that would be
    granting themselves, and another steward of the site decides. One grant per project and site is in force at a
    time; to change its end, revoke it and grant again. The site's row is locked meanwhile, so two stewards
    granting at once cannot both succeed.
    """
    _check_steward(granted_by, source)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Give the reason for exact counts and the project's IRB protocol."))
    today = timezone.localdate()
    if not isinstance(ends_at, date) or ends_at <= today:
        raise ValidationError(_("The grant must end on a day after today."))
    Source.objects.select_for_update().filter(pk=source.pk).first()
    project = Project.objects.get(pk=project.pk)
    if project.expires_on < today:
        raise ValidationError(_("The project has ended: its counts can no longer be made exact."))
    if ends_at > project.expires_on:
        raise ValidationError(
            _("The grant cannot outlast the project, which ends on %(date)s.") % {"date": project.expires_on}
        )
    if not project.sources.filter(pk=source.pk).exists():
        raise ValidationError(_("The project does not count on this site."))
    if (
        project.principal_investigator_id == granted_by.pk
        or ProjectMembership.objects.filter(
            project=project, user=granted_by, status__in=[MembershipStatus.APPROVED, MembershipStatus.REQUESTED]
        ).exists()
    ):
        raise PermissionDenied(
            _("You work in this project: another data steward of the site decides on its exact counts.")
        )
    current = grants_in_force().filter(project=project, source=source).first()
    if current is not None:
        raise ValidationError(
            _("Grant #%(grant)s already makes this project's counts exact here until %(date)s: revoke it first.")
            % {"grant": current.pk, "date": current.ends_at}
        )
    grant = ExactCountGrant.objects.create(
        project=project, source=source, reason=reason, ends_at=ends_at, granted_by=granted_by
    )
    audit_record(
        action="exact_counts_grant",
        actor=granted_by,
        obj=grant,
        source_key=source.key,
        ip_address=ip_address,
        detail={"project": project.pk, "source": source.key, "ends_at": ends_at.isoformat(), "reason": reason},
    )
    return grant


@transaction.atomic
def revoke_exact_counts(
    *, grant: ExactCountGrant, revoked_by: User, reason: str, ip_address: str | None = None
) -> ExactCountGrant:
    """End a grant now: the project's counts at the site are perturbed again from the next read. A steward of the
    site revokes, with a reason (a member of the project too: taking exact counts away needs no second person)."""
    grant = ExactCountGrant.objects.select_for_update().select_related("source").get(pk=grant.pk)
    _check_steward(revoked_by, grant.source)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Give the reason for the revocation."))
    if grant.revoked_at is not None:
        raise ValidationError(_("This grant is already revoked."))
    grant.revoked_at = timezone.now()
    grant.revoked_by = revoked_by
    grant.revocation_reason = reason
    grant.save(update_fields=["revoked_at", "revoked_by", "revocation_reason"])
    audit_record(
        action="exact_counts_revoke",
        actor=revoked_by,
        obj=grant,
        source_key=grant.source.key,
        ip_address=ip_address,
        detail={"project": grant.project_id, "source": grant.source.key, "reason": reason},
    )
    return grant
