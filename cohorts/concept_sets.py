"""Concept sets saved in projects (services and selectors), and concept counts as a user may see them.

A concept set is a Circe ConceptSet expression (``{"items": [{"concept": {...}, "isExcluded",
"includeDescendants", "includeMapped"}]}``). Access is per object like definitions: the project's members view
it, its owners and analysts change it, its creator (and admins) delete it. Objects a user may not view answer
404 exactly like missing ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from accounts.models import Project
from accounts.permissions import (
    filter_by_permission,
    grant,
    is_admin,
    project_role_for_user,
    project_sources_for_user,
    projects_for_user,
    user_can,
)
from audit.services import audit_record
from cohorts.models import ConceptSet
from disclosure.rules import shown
from disclosure.selectors import rule_for
from warehouse.models import Concept, Source
from warehouse.vocabulary import (
    SetItem,
    concept_as_dict,
    concept_counts,
    concept_query,
    concept_search,
    concept_set_resolve,
)

VIEW = "view_conceptset"
CHANGE = "change_conceptset"
DELETE = "delete_conceptset"
CREATOR_CODENAMES = (VIEW, CHANGE, DELETE)
#: Project roles that edit the project's concept sets; every member (partner viewers too) views them.
EDITING_ROLES = ("owner", "analyst")
MAX_ITEMS = 1_000
PREVIEW_SIZE = 100


# --- counts ---------------------------------------------------------------------------------------------------


def count_sources_for_user(user: Any) -> QuerySet[Source]:
    """The active sites whose concept counts the user may see: those of the projects they work in today
    (admins: every active site). Outsiders see none."""
    active = Source.objects.filter(is_active=True)
    if is_admin(user):
        return active.order_by("key")
    ids: set[int] = set()
    for project in projects_for_user(user):
        ids |= set(project_sources_for_user(user, project).values_list("pk", flat=True))
    return active.filter(pk__in=ids).order_by("key")


def concept_counts_for_user(user: Any, concept_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per concept, one entry per site the user may see: records and persons after the site's privacy rule for
    the user's role ("<10" for a hidden count, null when the site has not counted that concept)."""
    sources = list(count_sources_for_user(user))
    stored = concept_counts(concept_ids=concept_ids, sources=sources)
    role = getattr(user, "role", "")
    out: dict[int, list[dict[str, Any]]] = {}
    for cid in concept_ids:
        entries = []
        for source in sources:
            rule = rule_for(source=source, role=role)
            count = stored.get((source.pk, cid))
            entries.append(
                {
                    "source": source.key,
                    "source_name": source.name,
                    "records": shown(count.record_count, rule) if count else None,
                    "persons": shown(count.person_count, rule) if count else None,
                }
            )
        out[cid] = entries
    return out


def concept_search_for_user(user: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The search payload shared by search.json and the API: hits for raw query-string parameters, each with the
    counts per site the user may see. ``ValueError`` with a message for bad parameters."""
    query = concept_query(
        q=params.get("q"),
        domain=params.get("domain"),
        vocabulary=params.get("vocabulary"),
        standard=params.get("standard") or "any",
        include_invalid=params.get("invalid"),
        limit=params.get("limit"),
        offset=params.get("offset"),
    )
    found = concept_search(query)
    counts = concept_counts_for_user(user, [c.concept_id for c in found])
    results = [{**concept_as_dict(c), "counts": counts.get(c.concept_id, [])} for c in found]
    return {
        "query": query.text,
        "total_shown": len(results),
        "results": results,
        "limit": query.limit,
        "offset": query.offset,
    }


# --- expression -----------------------------------------------------------------------------------------------

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


def expression_resolve(expression: dict[str, Any]) -> dict[str, Any]:
    """The resolved set of a (normalized) expression: its size and the first concepts, as the compiler would
    resolve it on a site with the same vocabulary."""
    ids = concept_set_resolve(
        SetItem(
            concept_id=item["concept"]["CONCEPT_ID"],
            is_excluded=item["isExcluded"],
            include_descendants=item["includeDescendants"],
            include_mapped=item["includeMapped"],
        )
        for item in expression["items"]
    )
    first = Concept.objects.in_bulk(ids[:PREVIEW_SIZE])
    return {"size": len(ids), "concepts": [concept_as_dict(first[i]) for i in ids[:PREVIEW_SIZE] if i in first]}


# --- selectors ------------------------------------------------------------------------------------------------


def concept_sets_for_user(user: Any, *, project: Project | None = None) -> QuerySet[ConceptSet]:
    """The concept sets the user may view, by name; of one project when given."""
    queryset = filter_by_permission(
        queryset=ConceptSet.objects.select_related("project", "created_by"), user=user, codename=VIEW
    )
    if project is not None:
        queryset = queryset.filter(project=project)
    return queryset.order_by("project__title", "name", "id")


def concept_set_get_for_user(user: Any, pk: int, codename: str = VIEW) -> ConceptSet:
    """The set ``pk`` if the user may view it (Http404 otherwise); PermissionDenied when they may view it
    but not do ``codename``."""
    concept_set = concept_sets_for_user(user).filter(pk=pk).first()
    if concept_set is None:
        raise Http404("No such concept set.")
    if codename != VIEW and not user_can(user, codename, concept_set):
        raise PermissionDenied(_("You may view this concept set but not change it."))
    return concept_set


def concept_set_projects_for_user(user: Any) -> QuerySet[Project]:
    """Projects in which the user may save concept sets: running ones where they are owner or analyst."""
    projects = projects_for_user(user)
    if is_admin(user):
        return projects.order_by("title")
    keep = [p.pk for p in projects if project_role_for_user(user, p) in EDITING_ROLES]
    return projects.filter(pk__in=keep).order_by("title")


# --- services -------------------------------------------------------------------------------------------------


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ValidationError(_("Give the concept set a name."))
    if len(name) > 200:
        raise ValidationError(_("The name is longer than 200 characters."))
    return name


@transaction.atomic
def concept_set_create(
    *, user: Any, project: Project, name: str, expression: dict[str, Any], description: str = ""
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
    user: Any,
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
def concept_set_delete(*, user: Any, concept_set: ConceptSet) -> None:
    """Delete a concept set (its creator and admins only; PermissionDenied otherwise)."""
    if not user_can(user, DELETE, concept_set):
        raise PermissionDenied(_("Only the creator of a concept set deletes it."))
    audit_record(action="concept_set_delete", actor=user, obj=concept_set)
    concept_set.delete()
