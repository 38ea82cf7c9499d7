"""Vocabulary search, concept pages and the concept set editor (pages and their JSON endpoints).

The vocabulary itself is public (warehouse.vocabulary); what is not are the counts per site, which come through
``concept_counts_for_user`` only: sites of the user's running projects, each with its privacy rule for the
user's role. Concept sets are reached through ``concept_set_get_for_user`` (404 for others' sets, 403 when the
user may see a set but not change it). Bad input answers 400 with a message, and nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import account_is_usable, user_can
from cohorts.concept_sets import selectors as concept_set_selectors
from cohorts.concept_sets import services as concept_set_services
from warehouse.vocabulary.hierarchy import concept_get, concept_hierarchy
from warehouse.vocabulary.search import STANDARD_CHOICES, concept_as_dict, vocabulary_filters


def _bad_request(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def _usable(request: HttpRequest) -> None:
    # login_required lets any signed-in account through; a pending or suspended one sees nothing.
    if not account_is_usable(request.user):
        raise Http404


@login_required
@require_GET
def concept_search_json(request: HttpRequest) -> JsonResponse:
    """GET search.json?q=&domain=&vocabulary=&standard=S|C|N|any&limit=25&offset=0 (contract of the builder)."""
    _usable(request)
    try:
        return JsonResponse(concept_set_selectors.concept_search_for_user(request.user, request.GET))
    except ValueError as exc:
        return _bad_request(str(exc))


@login_required
@require_GET
def concept_search_page(request: HttpRequest) -> HttpResponse:
    """The search page: filters, and a table of hits with their counts per site."""
    _usable(request)
    context: dict[str, Any] = {
        "filters": vocabulary_filters(),
        "standard_choices": STANDARD_CHOICES,
        "params": request.GET,
        "error": "",
        "payload": None,
    }
    status = 200
    if request.GET.get("q", "").strip():
        try:
            context["payload"] = concept_set_selectors.concept_search_for_user(request.user, request.GET)
        except ValueError as exc:
            context["error"] = str(exc)
            status = 400
    sources = list(concept_set_selectors.count_sources_for_user(request.user))
    context["sources"] = sources
    return render(request, "cohorts/concepts/search.html", context, status=status)


def _concept_payload(request: HttpRequest, concept_id: int) -> dict[str, Any]:
    concept = concept_get(concept_id)
    if concept is None:
        raise Http404(_("No such concept."))
    hierarchy = concept_hierarchy(concept_id)
    counts = concept_set_selectors.concept_counts_for_user(request.user, [concept_id])
    return {**concept_as_dict(concept), "counts": counts[concept_id], **hierarchy}


@login_required
@require_GET
def concept_detail_json(request: HttpRequest, concept_id: int) -> JsonResponse:
    """GET <concept_id>.json: the concept, parents and children (one level), descendants total, mappings."""
    _usable(request)
    try:
        return JsonResponse(_concept_payload(request, concept_id))
    except Http404:
        return JsonResponse({"error": _("No concept with id %(id)s.") % {"id": concept_id}}, status=404)


@login_required
@require_GET
def concept_detail_page(request: HttpRequest, concept_id: int) -> HttpResponse:
    """A concept with its counts, and links up and down its hierarchy."""
    _usable(request)
    context = {"concept": _concept_payload(request, concept_id), "count_legend": concept_set_selectors.count_legend()}
    return render(request, "cohorts/concepts/detail.html", context)


# --- concept sets -----------------------------------------------------------------------------------------------


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(_("The request is not JSON.")) from None
    if not isinstance(data, dict):
        raise ValidationError(_("The request is not a JSON object."))
    return data


def _message(exc: ValidationError) -> str:
    return "; ".join(str(m) for m in exc.messages)


@login_required
@require_GET
def concept_set_list(request: HttpRequest) -> HttpResponse:
    """The concept sets the user may view, grouped by project."""
    _usable(request)
    context = {
        "concept_sets": concept_set_selectors.concept_sets_for_user(request.user),
        "can_create": concept_set_selectors.concept_set_projects_for_user(request.user).exists(),
    }
    return render(request, "cohorts/concepts/set_list.html", context)


def _editor(request: HttpRequest, concept_set: Any) -> HttpResponse:
    can_change = concept_set is None or user_can(request.user, concept_set_selectors.CHANGE, concept_set)
    config = {
        "urls": {
            "search": reverse("cohorts:concept_search_json"),
            "resolve": reverse("cohorts:concept_set_resolve"),
            "save": reverse("cohorts:concept_set_edit", kwargs={"pk": concept_set.pk})
            if concept_set
            else reverse("cohorts:concept_set_new"),
            "concept": reverse("cohorts:concept_detail_page", kwargs={"concept_id": 0}),
        },
        "expression": concept_set.expression if concept_set else {"items": []},
        "can_change": can_change,
        # The script's words, translated here: static JS has no access to Django's catalogue.
        "text": {
            "searching": _("Searching…"),
            "none": _("No concept found."),
            "add": _("Add"),
            "added": _("Already in the set"),
            "remove": _("Remove %(name)s"),
            "exclude": _("Exclude %(name)s"),
            "descendants": _("Include descendants of %(name)s"),
            "mapped": _("Include concepts mapped to %(name)s"),
            "resolved": _("Resolved set: %(size)s concepts."),
            "empty": _("The set is empty: search and add concepts."),
            "saving": _("Saving…"),
            "saved": _("Saved."),
            "failed": _("Not saved: %(error)s"),
            "unavailable": _("The search is unavailable right now."),
        },
    }
    context = {
        "concept_set": concept_set,
        "projects": concept_set_selectors.concept_set_projects_for_user(request.user),
        "config": config,
        "can_change": can_change,
        "filters": vocabulary_filters(),
    }
    return render(request, "cohorts/concepts/set_editor.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def concept_set_new(request: HttpRequest) -> HttpResponse:
    """GET: an empty editor. POST (JSON {"name", "project", "description", "expression"}): create."""
    _usable(request)
    projects = concept_set_selectors.concept_set_projects_for_user(request.user)
    if not projects.exists():
        raise Http404
    if request.method == "GET":
        return _editor(request, None)
    try:
        data = _json_body(request)
        project = projects.filter(pk=_int(data.get("project"))).first()
        if project is None:
            raise ValidationError(_("Choose one of your projects."))
        created = concept_set_services.concept_set_create(
            user=request.user,
            project=project,
            name=data.get("name"),
            description=data.get("description") or "",
            expression=data.get("expression"),
        )
    except ValidationError as exc:
        return _bad_request(_message(exc))
    url = reverse("cohorts:concept_set_edit", kwargs={"pk": created.pk})
    return JsonResponse({"id": created.pk, "name": created.name, "url": url}, status=201)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_http_methods(["GET", "POST"])
def concept_set_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the editor (read-only for those who may only view). POST (JSON): save the set."""
    _usable(request)
    if request.method == "GET":
        return _editor(request, concept_set_selectors.concept_set_get_for_user(request.user, pk))
    concept_set = concept_set_selectors.concept_set_get_for_user(request.user, pk, concept_set_selectors.CHANGE)
    try:
        data = _json_body(request)
        concept_set_services.concept_set_update(
            user=request.user,
            concept_set=concept_set,
            name=data.get("name", concept_set.name),
            description=data.get("description"),
            expression=data.get("expression"),
        )
    except ValidationError as exc:
        return _bad_request(_message(exc))
    return JsonResponse({"id": concept_set.pk, "name": concept_set.name, "url": request.path})


@login_required
@require_GET
def concept_set_json(request: HttpRequest, pk: int) -> JsonResponse:
    """GET <pk>.json -> {"id", "name", "expression"}: what the cohort builder imports."""
    _usable(request)
    concept_set = concept_set_selectors.concept_set_get_for_user(request.user, pk)
    return JsonResponse({"id": concept_set.pk, "name": concept_set.name, "expression": concept_set.expression})


@login_required
@require_POST
def concept_set_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a set (its creator and admins; 403 for others who see it)."""
    _usable(request)
    concept_set = concept_set_selectors.concept_set_get_for_user(request.user, pk)
    if not user_can(request.user, concept_set_selectors.DELETE, concept_set):
        raise PermissionDenied(_("Only the creator of a concept set deletes it."))
    concept_set_services.concept_set_delete(user=request.user, concept_set=concept_set)
    messages.success(request, _("Concept set deleted."))
    return redirect("cohorts:concept_set_list")


@login_required
@require_POST
def concept_set_resolve(request: HttpRequest) -> JsonResponse:
    """POST {"expression": {...}} -> {"size", "concepts"}: the resolved set, as a site would resolve it."""
    _usable(request)
    try:
        data = _json_body(request)
        expression = concept_set_services.expression_normalize(data.get("expression"))
    except ValidationError as exc:
        return _bad_request(_message(exc))
    return JsonResponse(concept_set_selectors.expression_resolve(expression))
