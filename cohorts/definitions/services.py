"""Writes on cohort definitions: create, save a version, share and unshare, duplicate, restore."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.permissions import account_is_usable, grant, projects_for_user, revoke, user_can
from audit.services import audit_record
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.definitions.selectors import definition_create_allowed, definition_shares
from cohorts.expression import parse_expression
from cohorts.expression.hashing import expression_hash

#: The longest name, description and version note a definition keeps (the model's columns; the pages say so).
MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_NOTE = 500

#: What the owner of a definition may do to it: everything.
OWNER_CODENAMES = (
    "view_cohortdefinition",
    "change_cohortdefinition",
    "run_cohortdefinition",
    "share_cohortdefinition",
    "request_dataset_cohortdefinition",
)


@transaction.atomic
def definition_create(
    *,
    owner: User,
    name: str,
    expression: dict[str, Any],
    description: str = "",
    project: Any = None,
    note: str = "",
) -> CohortDefinition:
    """Create a definition with its first version, which keeps ``note`` ("created" when none is given). The
    expression is validated first (ExpressionError)."""
    parsed = parse_expression(expression)
    definition = CohortDefinition.objects.create(name=name, description=description, owner=owner, project=project)
    _version_add(
        definition=definition, expression=parsed.to_json(), author=owner, note=note.strip()[:MAX_NOTE] or "created"
    )
    # Access is per object (accounts.permissions): without these the owner could not see their own definition.
    grant(definition, codenames=OWNER_CODENAMES, to_user=owner)
    audit_record(action="definition_create", actor=owner, obj=definition)
    return definition


@transaction.atomic
def definition_save_version(
    *, definition: CohortDefinition, expression: dict[str, Any], author: User, note: str = ""
) -> CohortDefinitionVersion:
    parsed = parse_expression(expression)
    # Lock the definition so two concurrent saves get consecutive numbers instead of a constraint error.
    CohortDefinition.objects.select_for_update().get(pk=definition.pk)
    version = _version_add(definition=definition, expression=parsed.to_json(), author=author, note=note)
    audit_record(action="definition_save", actor=author, obj=definition, detail={"version": version.number})
    return version


def _version_add(
    *, definition: CohortDefinition, expression: dict[str, Any], author: User, note: str
) -> CohortDefinitionVersion:
    last = definition.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = CohortDefinitionVersion.objects.create(
        definition=definition,
        number=last + 1,
        expression=expression,
        expression_hash=expression_hash(expression),
        author=author,
        note=note,
    )
    CohortDefinition.objects.filter(pk=definition.pk).update(updated_at=timezone.now())
    return version


#: What sharing gives. Editing stays with the owner in this slice: a shared definition is counted, never changed
#: by others (they import a copy instead), so the version a count ran on keeps its one author.
SHARE_USER_CODENAMES = ("view_cohortdefinition", "run_cohortdefinition")


#: Every role of the project: owners and analysts count and may request a dataset; partner viewers too — they
#: see counts rounded by their privacy rule (``disclosure``), and requesting a dataset is their purpose.
SHARE_PROJECT_CODENAMES = ("view_cohortdefinition", "run_cohortdefinition", "request_dataset_cohortdefinition")


@transaction.atomic
def definition_share(
    *,
    definition: CohortDefinition,
    by: User,
    to_user: User | None = None,
    to_project: Any = None,
    ip_address: str | None = None,
) -> None:
    """Share a definition with one person or with the members of a project (audited).

    Definitions stay inside their project: a definition of project P is shared with P or with a person working
    in P today; a definition without a project with any running project of the sharer's, or any approved
    account. Raises PermissionDenied when ``by`` may not share it, ValidationError for a wrong recipient.
    """
    if (to_user is None) == (to_project is None):
        raise ValueError("give exactly one of the user or the project")
    if not user_can(by, "share_cohortdefinition", definition):
        raise PermissionDenied(_("You may not share this definition."))
    if to_project is not None:
        if not projects_for_user(by).filter(pk=to_project.pk).exists():
            raise ValidationError(_("You can share only with a project you work in."))
        if definition.project_id is not None and definition.project_id != to_project.pk:
            raise ValidationError(_("A definition is shared inside its own project only."))
        grant(definition, codenames=SHARE_PROJECT_CODENAMES, to_project=to_project)
        target = {"project": to_project.pk}
    else:
        if not account_is_usable(to_user):
            raise ValidationError(_("That account is not approved."))
        if (
            definition.project_id is not None
            and not projects_for_user(to_user).filter(pk=definition.project_id).exists()
        ):
            raise ValidationError(_("That person does not work in the definition's project."))
        grant(definition, codenames=SHARE_USER_CODENAMES, to_user=to_user)
        target = {"user": to_user.username}
    audit_record(action="definition_share", actor=by, obj=definition, ip_address=ip_address, detail=target)


def definition_create_for_user(
    *,
    owner: User,
    name: str,
    expression: dict[str, Any],
    project: Any = None,
    description: str = "",
    note: str = "",
) -> CohortDefinition:
    """Create a definition from the browser: as ``definition_create``, after checking that the owner may create
    definitions (partners consume shared cohorts, they do not write them) in that project (one they work in)."""
    if not definition_create_allowed(owner):
        raise PermissionDenied(_("Your role does not create cohort definitions."))
    if project is not None and not projects_for_user(owner).filter(pk=project.pk).exists():
        raise ValidationError(_("You can create definitions only in a project you work in."))
    return definition_create(
        owner=owner, name=name, expression=expression, description=description, project=project, note=note
    )


@transaction.atomic
def definition_update(
    *,
    definition: CohortDefinition,
    by: User,
    name: str,
    description: str,
    project: Any,
    ip_address: str | None = None,
) -> list[str]:
    """Rename, re-describe or move a definition to another project (audited as ``definition_update`` with the old
    and new values); returns the names of the fields that changed (nothing is written when none did).

    The rules of creation hold: only who may change the definition (its owner), a name of 1–200 characters, and a
    project the user works in today — moving needs the rights in the project it goes to; keeping the project it is
    in needs nothing more. A definition stays inside its project (``definition_share``): when it moves, the
    shares with other projects and with people who do not work in the new one are taken back in the same
    transaction (recorded in the event's detail), so nobody keeps it through the project it left.
    """
    if not user_can(by, "change_cohortdefinition", definition):
        raise PermissionDenied(_("Only the owner of this definition can change it."))
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(_("Give the definition a name (up to 200 characters)."))
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(_("The description is longer than 5,000 characters."))
    # Lock the row: a concurrent save or update waits, and the values compared below are the current ones.
    current = CohortDefinition.objects.select_for_update().get(pk=definition.pk)
    project_id = project.pk if project is not None else None
    if project_id != current.project_id:
        if not definition_create_allowed(by):
            raise PermissionDenied(_("Your role does not create cohort definitions."))
        if project is not None and not projects_for_user(by).filter(pk=project_id).exists():
            raise ValidationError(_("Choose a project you work in."))
    changes: dict[str, Any] = {}
    for field, new in (("name", name), ("description", description), ("project", project_id)):
        old = current.project_id if field == "project" else getattr(current, field)
        if old != new:
            # A description may be long: the trail keeps its start, enough to recognise it.
            changes[field] = (
                {"from": old, "to": new} if field != "description" else {"from": old[:300], "to": new[:300]}
            )
    if not changes:
        return []
    detail: dict[str, Any] = {"changed": changes}
    if "project" in changes:
        detail["unshared"] = _shares_outside(current, project)
    CohortDefinition.objects.filter(pk=current.pk).update(
        name=name, description=description, project=project, updated_at=timezone.now()
    )
    definition.refresh_from_db()
    audit_record(action="definition_update", actor=by, obj=definition, ip_address=ip_address, detail=detail)
    return list(changes)


@transaction.atomic
def definition_edit(
    *,
    definition: CohortDefinition,
    by: User,
    expression: dict[str, Any],
    note: str,
    name: str,
    description: str,
    project: Any,
    ip_address: str | None = None,
) -> tuple[CohortDefinitionVersion | None, list[str]]:
    """A save of the builder in edit mode, in one transaction: the name, description and project
    (``definition_update``) and the expression as the next version (``definition_save_version``). Returns the new
    version and the fields that changed. A save that only renames, re-describes or moves the definition makes no
    version (the criteria are what versions keep): None then."""
    parsed = parse_expression(expression)
    changed = definition_update(
        definition=definition, by=by, name=name, description=description, project=project, ip_address=ip_address
    )
    latest = definition.latest_version()
    if changed and latest is not None and latest.expression_hash == expression_hash(parsed.to_json()):
        return None, changed
    version = definition_save_version(definition=definition, expression=expression, author=by, note=note)
    return version, changed


def _shares_outside(definition: CohortDefinition, project: Any) -> dict[str, list[Any]]:
    """Take back the shares a definition moving to ``project`` may not keep (``definition_share``'s rule): every
    other project's, and every person's who does not work in ``project``. A definition moving out of every project
    keeps its shares: one without a project may be shared with any project or approved account. Returns whom, for
    the audit event."""
    if project is None:
        return {"projects": [], "users": []}
    shares = definition_shares(definition)
    projects = [p for p in shares["projects"] if p.pk != project.pk]
    people = [u for u in shares["users"] if not projects_for_user(u).filter(pk=project.pk).exists()]
    for other in projects:
        revoke(definition, codenames=SHARE_PROJECT_CODENAMES, from_project=other)
    for person in people:
        revoke(definition, codenames=SHARE_USER_CODENAMES, from_user=person)
    return {"projects": [p.pk for p in projects], "users": [u.username for u in people]}


@transaction.atomic
def definition_unshare(
    *,
    definition: CohortDefinition,
    by: User,
    from_user: User | None = None,
    from_project: Any = None,
    ip_address: str | None = None,
) -> None:
    """Take back a share (audited): what ``definition_share`` gave a person or a project is revoked.

    The owner's own permissions are never touched (they are not a share). Raises PermissionDenied when ``by``
    may not share the definition, ValidationError when asked to unshare from its owner.
    """
    if (from_user is None) == (from_project is None):
        raise ValueError("give exactly one of the user or the project")
    if not user_can(by, "share_cohortdefinition", definition):
        raise PermissionDenied(_("You may not change who sees this definition."))
    if from_project is not None:
        revoke(definition, codenames=SHARE_PROJECT_CODENAMES, from_project=from_project)
        target = {"project": from_project.pk}
    else:
        if from_user.pk == definition.owner_id:
            raise ValidationError(_("The owner keeps their definition; it cannot be unshared from them."))
        revoke(definition, codenames=SHARE_USER_CODENAMES, from_user=from_user)
        target = {"user": from_user.username}
    audit_record(action="definition_unshare", actor=by, obj=definition, ip_address=ip_address, detail=target)


@transaction.atomic
def definition_duplicate(
    *, definition: CohortDefinition, by: User, project: Any = None, name: str = "", ip_address: str | None = None
) -> CohortDefinition:
    """A new definition owned by ``by`` whose version 1 is a copy of the latest version of ``definition``.

    The copy lives in ``project`` if given, else in the original's project; either must be a project ``by``
    works in today (a definition without a project may be copied without one). Sharing is not copied: the copy
    starts private to its owner. Audited on both definitions' trail (``definition_duplicate`` with the source).
    """
    if not user_can(by, "view_cohortdefinition", definition):
        raise PermissionDenied(_("You may not see this definition."))
    if not definition_create_allowed(by):
        raise PermissionDenied(_("Your role does not create cohort definitions."))
    target_project = project if project is not None else definition.project
    if target_project is not None and not projects_for_user(by).filter(pk=target_project.pk).exists():
        raise ValidationError(_("Copy it into a project you work in."))
    latest = definition.latest_version()
    if latest is None:
        raise ValidationError(_("This definition has no saved version to copy."))
    copy_name = (name or "").strip() or f"Copy of {definition.name}"[:200]
    copy = CohortDefinition.objects.create(
        name=copy_name, description=definition.description, owner=by, project=target_project
    )
    _version_add(
        definition=copy,
        expression=latest.expression,
        author=by,
        note=f"copy of definition {definition.pk} version {latest.number}"[:500],
    )
    grant(copy, codenames=OWNER_CODENAMES, to_user=by)
    audit_record(
        action="definition_duplicate",
        actor=by,
        obj=copy,
        ip_address=ip_address,
        detail={"from_definition": definition.pk, "from_version": latest.number},
    )
    return copy


@transaction.atomic
def version_restore(
    *, definition: CohortDefinition, number: int, by: User, ip_address: str | None = None
) -> CohortDefinitionVersion:
    """Make an old version current again by saving its expression as a new version (history is never
    rewritten: the versions in between stay). Needs the change permission (the owner's)."""
    if not user_can(by, "change_cohortdefinition", definition):
        raise PermissionDenied(_("Only the owner can restore an earlier version."))
    # Lock first so a concurrent save cannot take the same number.
    CohortDefinition.objects.select_for_update().get(pk=definition.pk)
    old = definition.versions.filter(number=number).first()
    if old is None:
        raise ValidationError(_("There is no version %(number)s.") % {"number": number})
    version = _version_add(
        definition=definition, expression=old.expression, author=by, note=f"restored from version {number}"
    )
    audit_record(
        action="definition_restore",
        actor=by,
        obj=definition,
        ip_address=ip_address,
        detail={"restored": number, "version": version.number},
    )
    return version
