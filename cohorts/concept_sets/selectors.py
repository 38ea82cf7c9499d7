"""Reads of concept sets and of concept counts as a user may see them.

A concept set is a Circe ConceptSet expression (``{"items": [{"concept": {...}, "isExcluded",
"includeDescendants", "includeMapped"}]}``). Access is per object like definitions: the project's members view
it, its owners and analysts change it, its creator (and admins) delete it. Objects a user may not view answer
404 exactly like missing ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from accounts.models import Project, User
from accounts.permissions import (
    filter_by_permission,
    is_admin,
    project_role_for_user,
    project_sources_for_user,
    projects_for_user,
    user_can,
)
from cohorts.concept_sets.models import ConceptSet
from disclosure.rules import NOT_RELEASED, shown
from disclosure.selectors import rule_for
from warehouse.models import Concept, Source
from warehouse.vocabulary.counts import concept_counts, sources_counted
from warehouse.vocabulary.resolve import SetItem, concept_set_resolve
from warehouse.vocabulary.search import concept_as_dict, concept_query, concept_search, search_mappings

VIEW = "view_conceptset"
CHANGE = "change_conceptset"
DELETE = "delete_conceptset"
CREATOR_CODENAMES = (VIEW, CHANGE, DELETE)
#: Project roles that edit the project's concept sets; every member (partner viewers too) views them.
EDITING_ROLES = ("owner", "analyst")
MAX_ITEMS = 1_000
PREVIEW_SIZE = 100


def count_sources_for_user(user: User) -> QuerySet[Source]:
    """The active sites whose concept counts the user may see: those of the projects they work in today
    (admins: every active site). Outsiders see none."""
    active = Source.objects.filter(is_active=True)
    if is_admin(user):
        return active.order_by("key")
    ids: set[int] = set()
    for project in projects_for_user(user):
        ids |= set(project_sources_for_user(user, project).values_list("pk", flat=True))
    return active.filter(pk__in=ids).order_by("key")


def _count_text(value: int | str | None, *, counted: bool, standard: bool) -> str:
    """A released count in words for a cell: the number; "hidden (<10)" for a count under the site's threshold
    (the display ``disclosure`` released, inside the words); "not counted yet" when the site has not counted;
    "n/a (non-standard)" for a concept the sites never count (their records count under its standard concept)."""
    if value is None:
        return str(_("n/a (non-standard)") if counted and not standard else _("not counted yet"))
    if isinstance(value, int):
        return f"{value:,}"
    if value == NOT_RELEASED:
        return str(_("not released (count again)"))
    return str(_("hidden (%(shown)s)") % {"shown": value})


def count_legend() -> str:
    """One line that says what the count cells of a table mean (the search page, its JSON, the builder's hits)."""
    return str(
        _(
            "Records / persons per site, each slightly perturbed. “hidden (<n)”: under the site's threshold n, "
            "never shown. “0”: the site counted and found none. “not counted yet”: the site has not counted its "
            "concepts. “n/a”: a non-standard concept, counted under the standard concept it maps to."
        )
    )


def concept_counts_for_user(user: User, concept_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per concept, one entry per site the user may see: records and persons after the site's privacy rule for
    the user's role, and the rule that applied in words.

    The states are told apart: a site that has counted its concepts and has none of this one releases 0 (what
    ``disclosure.rules.protect`` releases for an empty count, as for a cohort of nobody); a count under the
    threshold is released as its display ("<10"), never the number; a site that has not counted yet has null
    (``counted`` false); a non-standard concept, which no site counts, has null too. ``records_text`` and
    ``persons_text`` say each in words for a table cell.

    Each count is perturbed with its own cell key, computed at the site (``concept_sets.counts``): the record
    count and the person count are two cells, so neither gives the other's noise away, and the same concept at
    the same site always shows the same numbers. No exact-count grant applies here: the counts belong to no
    project. A count stored without a key (before the sites computed keys) is not released."""
    sources = list(count_sources_for_user(user))
    stored = concept_counts(concept_ids=concept_ids, sources=sources)
    counted = sources_counted(sources=sources)
    # The sites count standard concepts only (the domain tables' concept columns): a source code is not counted.
    not_standard = set(
        Concept.objects.filter(concept_id__in=concept_ids).exclude(standard_concept="S").values_list("pk", flat=True)
    )
    role = getattr(user, "role", "")
    out: dict[int, list[dict[str, Any]]] = {}
    for cid in concept_ids:
        entries = []
        standard = cid not in not_standard
        for source in sources:
            rule = rule_for(source=source, role=role)
            count = stored.get((source.pk, cid))
            records: int | str | None = None
            persons: int | str | None = None
            if count is not None:
                records = shown(count.record_count, rule, count.record_key)
                persons = shown(count.person_count, rule, count.person_key)
            elif source.pk in counted and cid not in not_standard:
                # Counted, and no record of the concept at the site: the empty count, as disclosure releases it.
                records = shown(0, rule)
                persons = shown(0, rule)
            entries.append(
                {
                    "source": source.key,
                    "source_name": source.name,
                    "counted": source.pk in counted,
                    "records": records,
                    "persons": persons,
                    "records_text": _count_text(records, counted=source.pk in counted, standard=standard),
                    "persons_text": _count_text(persons, counted=source.pk in counted, standard=standard),
                    "hidden": isinstance(records, str) or isinstance(persons, str),
                    "rule": rule.describe(),
                }
            )
        out[cid] = entries
    return out


def concept_search_for_user(user: User, params: Mapping[str, Any]) -> dict[str, Any]:
    """The search payload shared by search.json and the API: hits for raw query-string parameters, each with the
    counts per site the user may see and the 'Maps to' links that explain it (``search_mappings``: the standard
    concepts a source code maps to, the source codes that brought a standard concept). ``ValueError`` with a
    message for bad parameters."""
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
    mappings = search_mappings(query, found)
    results = [{**concept_as_dict(c), **mappings[c.concept_id], "counts": counts.get(c.concept_id, [])} for c in found]
    return {
        "query": query.text,
        "total_shown": len(results),
        "results": results,
        "limit": query.limit,
        "offset": query.offset,
        "count_legend": count_legend(),
    }


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


def concept_sets_for_user(user: User, *, project: Project | None = None) -> QuerySet[ConceptSet]:
    """The concept sets the user may view, by name; of one project when given."""
    queryset = filter_by_permission(
        queryset=ConceptSet.objects.select_related("project", "created_by"), user=user, codename=VIEW
    )
    if project is not None:
        queryset = queryset.filter(project=project)
    return queryset.order_by("project__title", "name", "id")


def concept_set_get_for_user(user: User, pk: int, codename: str = VIEW) -> ConceptSet:
    """The set ``pk`` if the user may view it (Http404 otherwise); PermissionDenied when they may view it
    but not do ``codename``."""
    concept_set = concept_sets_for_user(user).filter(pk=pk).first()
    if concept_set is None:
        raise Http404("No such concept set.")
    if codename != VIEW and not user_can(user, codename, concept_set):
        raise PermissionDenied(_("You may view this concept set but not change it."))
    return concept_set


def concept_set_projects_for_user(user: User) -> QuerySet[Project]:
    """Projects in which the user may save concept sets: running ones where they are owner or analyst."""
    projects = projects_for_user(user)
    if is_admin(user):
        return projects.order_by("title")
    keep = [p.pk for p in projects if project_role_for_user(user, p) in EDITING_ROLES]
    return projects.filter(pk__in=keep).order_by("title")
