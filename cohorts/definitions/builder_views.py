"""The block builder: a page that edits a definition's Circe expression JSON in the browser, and its JSON endpoints.

The page (``static/js/cohort_builder.js``) holds the expression itself and changes only the fields it shows, so an
imported ATLAS definition keeps everything else byte for byte. The server never trusts the page: every save is
parsed and validated by ``cohorts.expression`` and written by the services as a new version (nothing is written
when it is invalid: the errors come back with their JSON path and the block they concern). Counts reuse
``cohorts:run_create`` on the saved version, so they share its permission checks, privacy rules and result cache.
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

from accounts.models import User
from accounts.permissions import projects_for_user, user_can
from cohorts.definitions import selectors as definition_selectors
from cohorts.definitions import services as definition_services
from cohorts.definitions.builder import builder_domains, describe_expression, empty_expression, expression_errors
from cohorts.definitions.models import CohortDefinition
from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs import selectors as run_selectors

CHANGE = "change_cohortdefinition"
MAX_NAME = 200
MAX_NOTE = 500


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
        "run": reverse("cohorts:run_create", kwargs={"pk": definition.pk}),
        "detail": reverse("cohorts:definition_detail", kwargs={"pk": definition.pk}),
        "edit": reverse("cohorts:definition_edit", kwargs={"pk": definition.pk}),
    }


def _page(request: HttpRequest, *, definition: Any, expression: dict[str, Any]) -> HttpResponse:
    base = reverse("cohorts:definition_list")
    config = {
        "expression": expression,
        "definition": None
        if definition is None
        else {"id": definition.pk, "name": definition.name, "version": definition.latest_version().number},
        "projects": [{"id": p.pk, "title": p.title} for p in projects_for_user(request.user).order_by("title")],
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
        "initial": describe_expression(expression),
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
    """Sentences for each block, the fragments the builder does not show, and the validation errors (if any) of
    the expression posted. Computes only; writes nothing."""
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    try:
        data = _body(request)
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    return JsonResponse(describe_expression(data["expression"]))


@login_required
@require_POST
def builder_create(request: HttpRequest) -> JsonResponse:
    """Create a definition from the builder: ``{"name", "project", "description", "expression"}`` → 201."""
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    try:
        data = _body(request)
        name = str(data.get("name") or "").strip()
        if not name or len(name) > MAX_NAME:
            raise _BadRequest(
                [{"path": "", "message": _("Give the definition a name (up to 200 characters)."), "block": "name"}]
            )
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
            description=str(data.get("description") or "")[:5000],
        )
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    except (PermissionDenied, ValidationError) as exc:
        return JsonResponse({"errors": _general(" ".join(getattr(exc, "messages", [str(exc)])))}, status=400)
    return _saved(request, definition, status=201)


@login_required
@require_POST
def builder_save(request: HttpRequest, pk: int) -> JsonResponse:
    """Save the posted expression as the next version of the definition (with an optional note)."""
    definition = _editable(request.user, pk)
    try:
        data = _body(request)
        expression = _validated(data)
    except _BadRequest as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    definition_services.definition_save_version(
        definition=definition, expression=expression, author=request.user, note=_note(data) or "saved in the builder"
    )
    return _saved(request, definition, status=201)


def _saved(request: HttpRequest, definition: Any, *, status: int) -> JsonResponse:
    version = definition.latest_version()
    return JsonResponse(
        {
            "definition": {"id": definition.pk, "name": definition.name, "version": version.number},
            "expression": version.expression,
            "sources": _sources(request.user, definition),
            "urls": _definition_urls(definition),
        },
        status=status,
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _BadRequest([{"path": "", "message": _("Choose a project you work in."), "block": "name"}]) from None
