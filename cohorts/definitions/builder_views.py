"""The block builder: a page that edits a definition's Circe expression JSON in the browser, and its JSON endpoints.

The page (``static/js/cohort_builder.js``) holds the expression itself and changes only the fields it shows, so an
imported ATLAS definition keeps everything else byte for byte. The server never trusts the page: every save is
parsed and validated by ``cohorts.expression`` and written by the services as a new version (nothing is written
when it is invalid: the errors come back with their JSON path and the block they concern). Count counts the working
draft as it is on screen, without saving a version (``run_request_create_for_draft``): the same sites, privacy
rules, result cache, audit events and site jobs as a count of a saved version, on a definition the user may change.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Project, User
from accounts.permissions import projects_for_user, user_can
from audit.http import client_ip
from cohorts.definitions import selectors as definition_selectors
from cohorts.definitions import services as definition_services
from cohorts.definitions.builder import builder_domains, describe_expression, empty_expression, expression_errors
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.warnings import expression_warnings
from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs import selectors as run_selectors
from cohorts.runs import services as run_services
from cohorts.runs.errors import REFUSAL_STATUS, BrokerUnavailable, DraftNotAllowed, RunLimitReached, SourceNotReady

CHANGE = "change_cohortdefinition"
MAX_NAME = definition_services.MAX_NAME
MAX_NOTE = definition_services.MAX_NOTE
MAX_DESCRIPTION = definition_services.MAX_DESCRIPTION


class _BadRequest(Exception):
    """A request body the endpoint cannot use; becomes a 400 with these errors."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__(errors[0]["message"] if errors else "bad request")


def _general(message: str) -> list[dict[str, str]]:
    return [{"path": "", "message": message, "block": "general"}]


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest(_general(_("The request is not JSON."))) from None
    if not isinstance(data, dict) or not isinstance(data.get("expression"), dict):
        raise _BadRequest(_general(_("The request has no cohort expression.")))
    return data


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    """The expression of the request, validated (``_BadRequest`` with every problem otherwise)."""
    try:
        parse_expression(data["expression"])
    except ExpressionError as exc:
        raise _BadRequest(expression_errors(exc.errors)) from None
    return data["expression"]


def _note(data: dict[str, Any]) -> str:
    return str(data.get("note") or "").strip()[:MAX_NOTE]


def _editable(user: User, pk: int) -> CohortDefinition:
    """The definition if the user may change it: 404 when they may not even see it, 403 when they only see it."""
    definition = definition_selectors.definition_get_for_user(user, pk)
    if not user_can(user, CHANGE, definition):
        raise PermissionDenied(_("Only the owner of this definition can change it; duplicate it to build your own."))
    return definition


def _sources(user: User, definition: CohortDefinition) -> list[dict[str, Any]]:
    return [
        {"id": s.pk, "label": f"{s.name} ({s.key})"}
        for s in run_selectors.sources_for_user_and_definition(user, definition).order_by("name")
    ]


def _definition_urls(definition: Any) -> dict[str, str]:
    return {
        "save": reverse("cohorts:builder_save", kwargs={"pk": definition.pk}),
        "count": reverse("cohorts:builder_count", kwargs={"pk": definition.pk}),
        "detail": reverse("cohorts:definition_detail", kwargs={"pk": definition.pk}),
        "edit": reverse("cohorts:definition_edit", kwargs={"pk": definition.pk}),
    }


def validation(expression: dict[str, Any]) -> dict[str, Any]:
    """What the page's validation answers: the description of the draft (sentences, extras, errors) and its
    warnings, each with the block it is shown beside."""
    return {**describe_expression(expression), "warnings": expression_warnings(expression)}


def _definition_config(definition: CohortDefinition) -> dict[str, Any]:
    """What the page knows of a saved definition: its number, name, description, project and latest version (the
    name block edits the first three; the page compares them with these to tell unsaved edits)."""
    return {
        "id": definition.pk,
        "name": definition.name,
        "description": definition.description,
        "project": definition.project_id,
        "version": definition.latest_version().number,
    }


def _projects(user: User, definition: CohortDefinition | None) -> list[dict[str, Any]]:
    """The projects the page offers: those the user works in, and the definition's own even if they no longer
    do (it is where the definition is; keeping it needs no rights, moving it does)."""
    projects = [{"id": p.pk, "title": p.title} for p in projects_for_user(user).order_by("title")]
    current = definition.project if definition is not None else None
    if current is not None and all(p["id"] != current.pk for p in projects):
        projects.append({"id": current.pk, "title": current.title})
    return projects


def _page(request: HttpRequest, *, definition: Any, expression: dict[str, Any]) -> HttpResponse:
    base = reverse("cohorts:definition_list")
    config = {
        "expression": expression,
        "definition": None if definition is None else _definition_config(definition),
        # The page remembers its auto-count switch per user (in the browser's storage, under this id).
        "user": request.user.pk,
        "projects": _projects(request.user, definition),
        "sources": _sources(request.user, definition) if definition is not None else [],
        "domains": builder_domains(),
        "urls": {
            "describe": reverse("cohorts:builder_describe"),
            "create": reverse("cohorts:builder_create"),
            # The vocabulary search is another page's; written against its published contract and optional.
            "search": f"{base}concepts/search.json",
            "concept_set": f"{base}concept-sets/0.json",
            **(_definition_urls(definition) if definition is not None else {}),
        },
        "initial": validation(expression),
    }
    return render(request, "cohorts/builder.html", {"definition": definition, "config": config})


@login_required
@require_GET
def definition_new(request: HttpRequest) -> HttpResponse:
    """The builder for a new definition, starting from one empty entry event."""
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    return _page(request, definition=None, expression=empty_expression())


@login_required
@require_GET
def definition_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The builder on the latest version of a definition the user may change."""
    definition = _editable(request.user, pk)
    version = definition.latest_version()
    if version is None:
        raise Http404("No version to edit.")
    return _page(request, definition=definition, expression=version.expression)


@login_required
@require_POST
def builder_describe(request: HttpRequest) -> JsonResponse:
    """Sentences for each block, the fragments the builder does not show, the validation errors (if any) and the
    warnings of the expression posted. Computes only; writes nothing."""
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    try:
        data = _body(request)
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    return JsonResponse(validation(data["expression"]))


@login_required
@require_POST
def builder_create(request: HttpRequest) -> JsonResponse:
    """Create a definition from the builder: ``{"name", "project", "description", "expression"}`` → 201."""
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    try:
        data = _body(request)
        name = _name(data)
        project = None
        if data.get("project") not in (None, ""):
            project = projects_for_user(request.user).filter(pk=_int(data["project"])).first()
            if project is None:
                raise _BadRequest([{"path": "", "message": _("Choose a project you work in."), "block": "name"}])
        expression = _validated(data)
        definition = definition_services.definition_create_for_user(
            owner=request.user,
            name=name,
            expression=expression,
            project=project,
            description=_description(data),
            note=_note(data),
        )
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    except (PermissionDenied, ValidationError) as exc:
        return JsonResponse({"errors": _general(" ".join(getattr(exc, "messages", [str(exc)])))}, status=400)
    return _saved(request, definition, status=201, expression=expression)


@login_required
@require_POST
def builder_save(request: HttpRequest, pk: int) -> JsonResponse:
    """Save the posted expression as the next version of the definition (with an optional note).

    With ``name`` in the body (the page always sends it), the name, ``description`` and ``project`` are saved in
    the same transaction, under the rules of creation: moving to a project the user does not work in is refused
    (400, nothing written). A save that changes only those makes no new version (``definition_edit``)."""
    definition = _editable(request.user, pk)
    changed: list[str] = []
    try:
        data = _body(request)
        expression = _validated(data)
        note = _note(data) or "saved in the builder"
        if "name" in data:
            _version, changed = definition_services.definition_edit(
                definition=definition,
                by=request.user,
                expression=expression,
                note=note,
                name=_name(data),
                description=_description(data),
                project=_project(data),
                ip_address=client_ip(request),
            )
        else:
            definition_services.definition_save_version(
                definition=definition, expression=expression, author=request.user, note=note
            )
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    except (PermissionDenied, ValidationError) as exc:
        message = " ".join(getattr(exc, "messages", [str(exc)]))
        return JsonResponse({"errors": [{"path": "", "message": message, "block": "name"}]}, status=400)
    return _saved(request, definition, status=201, expression=expression, changed=changed)


@login_required
@require_POST
def builder_count(request: HttpRequest, pk: int) -> JsonResponse:
    """Count the posted draft on the chosen sites: ``{"expression", "sources": [ids]}`` → 201 with the count's
    URLs and its state and protected result as the run's status.json gives it — already final when every site's
    answer came from the result cache, so the builder shows it without asking again.

    Refusals write nothing: not allowed to see → 404, to change → 403; an invalid draft → 400 with the errors per
    block; a site not offered → 400; the user's limit of concurrent counts → 429; broker down → 503.
    """
    definition = _editable(request.user, pk)
    try:
        data = _body(request)
        expression = _validated(data)
        sources = _chosen_sources(request.user, definition, data.get("sources"))
        run_request = run_services.run_request_create_for_draft(
            user=request.user, definition=definition, expression=expression, sources=sources
        )
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    except DraftNotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except (SourceNotReady, RunLimitReached, BrokerUnavailable) as exc:
        status = REFUSAL_STATUS[type(exc)]
        return JsonResponse({"errors": _general(str(exc))}, status=status)
    return JsonResponse(
        {
            "request": run_request.pk,
            "url": reverse("cohorts:run_detail", kwargs={"pk": run_request.pk}),
            "status_url": reverse("cohorts:run_status", kwargs={"pk": run_request.pk}),
            "cancel_url": reverse("cohorts:run_cancel", kwargs={"pk": run_request.pk}),
            "result": run_selectors.run_request_status_for_user(request.user, run_request),
            "warnings": expression_warnings(expression),
        },
        status=201,
    )


def _chosen_sources(user: User, definition: CohortDefinition, ids: Any) -> list[Any]:
    """The sites the builder asks for, each one the user may count this definition on (``_BadRequest`` naming
    the others: a site outside the definition's project is refused, not dropped)."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _BadRequest(_general(_("Choose at least one site to count on.")))
    offered = {s.pk: s for s in run_selectors.sources_for_user_and_definition(user, definition)}
    refused = [str(i) for i in dict.fromkeys(ids) if i not in offered]
    if refused:
        message = _("You cannot count this definition on the site(s) %(ids)s.") % {"ids": ", ".join(refused[:10])}
        raise _BadRequest(_general(message))
    return [offered[i] for i in dict.fromkeys(ids)]


def _saved(
    request: HttpRequest, definition: Any, *, status: int, expression: dict[str, Any], changed: list[str] | None = None
) -> JsonResponse:
    """The answer to a save: the definition as now saved, its sites (the project decides them), the fields of the
    name block that changed, and the warnings of what was saved (shown again: saving does not silence them)."""
    definition.refresh_from_db()
    version = definition.latest_version()
    return JsonResponse(
        {
            "definition": _definition_config(definition),
            "expression": version.expression,
            "sources": _sources(request.user, definition),
            "urls": _definition_urls(definition),
            "changed": changed or [],
            "warnings": expression_warnings(expression),
        },
        status=status,
    )


def _name(data: dict[str, Any]) -> str:
    name = str(data.get("name") or "").strip()
    if not name or len(name) > MAX_NAME:
        raise _BadRequest(
            [{"path": "", "message": _("Give the definition a name (up to 200 characters)."), "block": "name"}]
        )
    return name


def _description(data: dict[str, Any]) -> str:
    description = str(data.get("description") or "")
    if len(description) > MAX_DESCRIPTION:
        raise _BadRequest(
            [{"path": "", "message": _("The description is longer than 5,000 characters."), "block": "name"}]
        )
    return description


def _project(data: dict[str, Any]) -> Project | None:
    """The project named in the body, or None for "no project". Whether the user may put the definition there is
    the service's question; an id of no project gets the same answer as one of a project they do not work in."""
    if data.get("project") in (None, ""):
        return None
    project = Project.objects.filter(pk=_int(data["project"])).first()
    if project is None:
        raise _BadRequest([{"path": "", "message": _("Choose a project you work in."), "block": "name"}])
    return project


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _BadRequest([{"path": "", "message": _("Choose a project you work in."), "block": "name"}]) from None
