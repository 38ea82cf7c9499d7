"""Writes on concept sets saved in projects: create, update, delete (access as in ``selectors``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from accounts.models import Project, User
from accounts.permissions import (
    grant,
    user_can,
)
from audit.services import audit_record
from cohorts.concept_sets.models import ConceptSet
from cohorts.concept_sets.selectors import (
    CHANGE,
    CREATOR_CODENAMES,
    DELETE,
    EDITING_ROLES,
    MAX_ITEMS,
    VIEW,
    concept_set_projects_for_user,
)
from warehouse.models import Concept
from warehouse.vocabulary.search import concept_as_dict

_CONCEPT_KEYS = (
    "CONCEPT_ID",
    "CONCEPT_NAME",
    "STANDARD_CONCEPT",
    "INVALID_REASON",
    "CONCEPT_CODE",
    "DOMAIN_ID",
    "VOCABULARY_ID",
    "CONCEPT_CLASS_ID",
)


def _flag(item: dict[str, Any], key: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(_("%(key)s must be true or false.") % {"key": key})
    return value


def expression_normalize(expression: Any) -> dict[str, Any]:
    """A clean Circe ConceptSet expression: known concept ids only, concept fields filled from the portal's
    vocabulary, flags as booleans. Raises ``ValidationError`` with a message otherwise."""
    if not isinstance(expression, dict) or not isinstance(expression.get("items"), list):
        raise ValidationError(_('A concept set expression is an object with a list of "items".'))
    raw_items = expression["items"]
    if len(raw_items) > MAX_ITEMS:
        raise ValidationError(_("A concept set holds at most %(n)s concepts.") % {"n": MAX_ITEMS})
    ids: list[int] = []
    for item in raw_items:
        concept = item.get("concept") if isinstance(item, dict) else None
        cid = concept.get("CONCEPT_ID") if isinstance(concept, dict) else None
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise ValidationError(_("Every item needs a concept with a numeric CONCEPT_ID."))
        ids.append(cid)
    known = Concept.objects.in_bulk(ids)
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise ValidationError(_("Unknown concept ids: %(ids)s.") % {"ids": ", ".join(str(i) for i in unknown[:10])})
    items = []
    seen: set[int] = set()
    for item, cid in zip(raw_items, ids, strict=True):
        if cid in seen:
            raise ValidationError(_("Concept %(id)s is in the set twice.") % {"id": cid})
        seen.add(cid)
        fields = concept_as_dict(known[cid])
        items.append(
            {
                "concept": {key: fields[key.lower()] for key in _CONCEPT_KEYS},
                "isExcluded": _flag(item, "isExcluded"),
                "includeDescendants": _flag(item, "includeDescendants"),
                "includeMapped": _flag(item, "includeMapped"),
            }
        )
    return {"items": items}


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ValidationError(_("Give the concept set a name."))
    if len(name) > 200:
        raise ValidationError(_("The name is longer than 200 characters."))
    return name


@transaction.atomic
def concept_set_create(
    *, user: User, project: Project, name: str, expression: dict[str, Any], description: str = ""
) -> ConceptSet:
    """Save a new concept set in ``project``; the project's members may view it, its owners and analysts
    change it."""
    if not concept_set_projects_for_user(user).filter(pk=project.pk).exists():
        raise PermissionDenied(_("You may not save concept sets in this project."))
    concept_set = ConceptSet.objects.create(
        project=project,
        name=_clean_name(name),
        description=str(description or ""),
        expression=expression_normalize(expression),
        created_by=user,
    )
    grant(concept_set, codenames=CREATOR_CODENAMES, to_user=user)
    grant(concept_set, codenames=[VIEW], to_project=project)
    grant(concept_set, codenames=[CHANGE], to_project=project, project_roles=EDITING_ROLES)
    audit_record(action="concept_set_create", actor=user, obj=concept_set)
    return concept_set


@transaction.atomic
def concept_set_update(
    *,
    user: User,
    concept_set: ConceptSet,
    name: str | None = None,
    expression: dict[str, Any] | None = None,
    description: str | None = None,
) -> ConceptSet:
    """Change a concept set the user may change (PermissionDenied otherwise)."""
    if not user_can(user, CHANGE, concept_set):
        raise PermissionDenied(_("You may view this concept set but not change it."))
    if name is not None:
        concept_set.name = _clean_name(name)
    if expression is not None:
        concept_set.expression = expression_normalize(expression)
    if description is not None:
        concept_set.description = str(description)
    concept_set.save()
    audit_record(
        action="concept_set_update", actor=user, obj=concept_set, detail={"items": len(concept_set.expression["items"])}
    )
    return concept_set


@transaction.atomic
def concept_set_delete(*, user: User, concept_set: ConceptSet) -> None:
    """Delete a concept set (its creator and admins only; PermissionDenied otherwise)."""
    if not user_can(user, DELETE, concept_set):
        raise PermissionDenied(_("Only the creator of a concept set deletes it."))
    audit_record(action="concept_set_delete", actor=user, obj=concept_set)
    concept_set.delete()
