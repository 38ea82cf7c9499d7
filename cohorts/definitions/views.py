"""Pages of cohort definitions: list, import, detail, export, sharing, versions, duplicate, summary."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.permissions import user_can
from audit.http import client_ip
from cohorts.definitions import selectors as definition_selectors
from cohorts.definitions import services as definition_services
from cohorts.definitions.describe import expression_summary
from cohorts.definitions.forms import (
    CompareForm,
    DefinitionImportForm,
    DefinitionListForm,
    DuplicateForm,
    ShareForm,
    UnshareForm,
)
from cohorts.definitions.versions import expression_diff, version_note_words
from cohorts.expression import ExpressionError
from cohorts.runs import selectors as run_selectors
from cohorts.runs.forms import RunForm

DEFINITIONS_PER_PAGE = 50


@login_required
@require_GET
def definition_list(request: HttpRequest) -> HttpResponse:
    """Definitions the user may see: searched, filtered, sorted, 50 a page, each with its latest version and its
    latest count (protected for the user's role)."""
    form = DefinitionListForm(request.GET or None, user=request.user)
    filters = form.filters()
    definitions = definition_selectors.definitions_listed_for_user(request.user, **filters)
    page = Paginator(definitions, DEFINITIONS_PER_PAGE).get_page(request.GET.get("page"))
    counts = run_selectors.latest_counts([d.pk for d in page.object_list], user=request.user)
    rows = [{"definition": d, "count": counts.get(d.pk)} for d in page.object_list]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "definitions": page.object_list,
        "query": query.urlencode(),
        "filtered": bool(filters["search"] or filters["project"] or filters["owner"]),
        "can_create": definition_selectors.definition_create_allowed(request.user),
    }
    return render(request, "cohorts/definition_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def definition_import(request: HttpRequest) -> HttpResponse:
    if not definition_selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    form = DefinitionImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        definition = _create(request, form, form.cleaned_data["expression"])
        if definition is not None:
            messages.success(request, _("Definition “%(name)s” imported.") % {"name": definition.name})
            return redirect("cohorts:definition_detail", pk=definition.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "cohorts/definition_import.html", {"form": form}, status=status)


def _create(request: HttpRequest, form: Any, expression: dict[str, Any]) -> Any:
    """Create through the service; its refusals become form errors (nothing is written then)."""
    data = form.cleaned_data
    try:
        return definition_services.definition_create_for_user(
            owner=request.user,
            name=data["name"],
            expression=expression,
            project=data.get("project"),
            description=data.get("description", ""),
        )
    except ExpressionError as exc:
        form.expression_errors = exc.errors
        form.add_error(None, "The cohort expression is not valid; nothing was saved.")
    except (PermissionDenied, ValidationError) as exc:
        form.add_error(None, " ".join(getattr(exc, "messages", [str(exc)])))
    return None


@login_required
@require_GET
def definition_detail(request: HttpRequest, pk: int) -> HttpResponse:
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    versions = _with_note_words(definition.versions.select_related("author").order_by("-number"))
    latest = versions[0] if versions else None
    sources = run_selectors.sources_for_user_and_definition(request.user, definition)
    can_share = user_can(request.user, "share_cohortdefinition", definition)
    context = {
        "definition": definition,
        "versions": versions,
        "latest": latest,
        "summary": expression_summary(latest.expression) if latest else None,
        "run_form": RunForm(sources=sources, initial={"sources": list(sources)}),
        "can_run": user_can(request.user, definition_selectors.RUN, definition),
        "has_sources": sources.exists(),
        "can_share": can_share,
        "share_form": ShareForm(),
        "shares": definition_selectors.definition_shares(definition) if can_share else None,
        "share_candidates": definition_selectors.share_candidates(request.user, definition) if can_share else None,
        "can_duplicate": definition_selectors.definition_create_allowed(request.user),
        "duplicate_form": DuplicateForm(user=request.user),
        "runs": run_selectors.run_requests_for_user(request.user, definition=definition)[:10],
    }
    return render(request, "cohorts/definition_detail.html", context)


def _with_note_words(versions: Any) -> list[Any]:
    """The versions, each with ``note_words``: its note as the page shows it (``version_note_words``)."""
    listed = list(versions)
    for version in listed:
        version.note_words = version_note_words(version.note)
    return listed


@login_required
@require_GET
def definition_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The ATLAS JSON of a version (the latest unless ``?version=n``), exactly as saved, as a download."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    versions = definition.versions.all()
    number = request.GET.get("version", "")
    version = versions.filter(number=int(number)).first() if number.isdigit() else versions.order_by("-number").first()
    if version is None:
        raise Http404("No such version.")
    response = HttpResponse(
        json.dumps(version.expression, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="cohort-{definition.pk}-v{version.number}.json"'
    return response


@login_required
@require_POST
def definition_share(request: HttpRequest, pk: int) -> HttpResponse:
    definition = definition_selectors.definition_get_for_user(request.user, pk, codename="share_cohortdefinition")
    project_pk = request.POST.get("project", "")
    if project_pk:
        return _share_with_project(request, definition, project_pk)
    form = ShareForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or _("Choose whom to share with."))
        return redirect("cohorts:definition_detail", pk=pk)
    try:
        if form.cleaned_data["with_project"]:
            if definition.project is None:
                raise ValidationError(_("This definition belongs to no project; share it with a person."))
            definition_services.definition_share(
                definition=definition, by=request.user, to_project=definition.project, ip_address=client_ip(request)
            )
            messages.success(request, _("Shared with the members of “%(project)s”.") % {"project": definition.project})
        else:
            # One message for unknown and not-allowed people: the form must not tell which user names exist.
            recipient = User.objects.filter(username=form.cleaned_data["username"].strip()).first()
            if recipient is None or recipient.pk == request.user.pk:
                raise ValidationError(_("No such person can receive this definition."))
            definition_services.definition_share(
                definition=definition, by=request.user, to_user=recipient, ip_address=client_ip(request)
            )
            messages.success(request, _("Shared with %(user)s.") % {"user": recipient.username})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("cohorts:definition_detail", pk=pk)


def _share_with_project(request: HttpRequest, definition: Any, project_pk: str) -> HttpResponse:
    """Share with a project chosen from the list of projects the sharer works in (any other id: a message)."""
    candidates = definition_selectors.share_candidates(request.user, definition)["projects"]
    project = candidates.filter(pk=int(project_pk)).first() if project_pk.isdigit() else None
    if project is None:
        messages.error(request, _("Choose a project you work in."))
        return redirect("cohorts:definition_detail", pk=definition.pk)
    try:
        definition_services.definition_share(
            definition=definition, by=request.user, to_project=project, ip_address=client_ip(request)
        )
        messages.success(request, _("Shared with the members of “%(project)s”.") % {"project": project})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("cohorts:definition_detail", pk=definition.pk)


@login_required
@require_POST
def definition_unshare(request: HttpRequest, pk: int) -> HttpResponse:
    """Take a share back from a project or a person listed on the page."""
    definition = definition_selectors.definition_get_for_user(request.user, pk, codename="share_cohortdefinition")
    form = UnshareForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or _("Choose one project or one person."))
        return redirect("cohorts:definition_detail", pk=pk)
    shares = definition_selectors.definition_shares(definition)
    try:
        if form.cleaned_data["project"] is not None:
            project = next((p for p in shares["projects"] if p.pk == form.cleaned_data["project"]), None)
            if project is None:
                raise ValidationError(_("It is not shared with that project."))
            definition_services.definition_unshare(
                definition=definition, by=request.user, from_project=project, ip_address=client_ip(request)
            )
            messages.success(request, _("No longer shared with “%(project)s”.") % {"project": project})
        else:
            person = next((u for u in shares["users"] if u.pk == form.cleaned_data["user"]), None)
            if person is None:
                raise ValidationError(_("It is not shared with that person."))
            definition_services.definition_unshare(
                definition=definition, by=request.user, from_user=person, ip_address=client_ip(request)
            )
            messages.success(request, _("No longer shared with %(user)s.") % {"user": person.username})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("cohorts:definition_detail", pk=pk)


@login_required
@require_POST
def definition_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    """Copy the latest version into a new definition owned by the user (in a project they work in)."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    if not definition_selectors.definition_create_allowed(request.user):
        raise PermissionDenied(_("Your role does not create cohort definitions."))
    form = DuplicateForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, _("Choose a project you work in."))
        return redirect("cohorts:definition_detail", pk=pk)
    try:
        copy = definition_services.definition_duplicate(
            definition=definition,
            by=request.user,
            project=form.cleaned_data["project"],
            name=form.cleaned_data["name"],
            ip_address=client_ip(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("cohorts:definition_detail", pk=pk)
    messages.success(request, _("Copied as “%(name)s”; the copy is yours.") % {"name": copy.name})
    return redirect("cohorts:definition_detail", pk=copy.pk)


@login_required
@require_GET
def definition_versions(request: HttpRequest, pk: int) -> HttpResponse:
    """Every version with its author and time, and the form to compare two of them."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    versions = _with_note_words(definition_selectors.definition_versions(definition))
    initial = {"b": versions[0].number, "a": versions[1].number} if len(versions) > 1 else {}
    context = {
        "definition": definition,
        "versions": versions,
        "compare_form": CompareForm(initial=initial),
        "can_restore": user_can(request.user, "change_cohortdefinition", definition),
    }
    return render(request, "cohorts/versions.html", context)


@login_required
@require_GET
def version_compare(request: HttpRequest, pk: int) -> HttpResponse:
    """Two versions compared in words (``cohorts.definitions.versions``); bad numbers: the versions form again."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    form = CompareForm(request.GET)
    if not form.is_valid():
        versions = _with_note_words(definition_selectors.definition_versions(definition))
        context = {"definition": definition, "versions": versions, "compare_form": form, "can_restore": False}
        return render(request, "cohorts/versions.html", context, status=400)
    old = definition_selectors.definition_version_get(definition, form.cleaned_data["a"])
    new = definition_selectors.definition_version_get(definition, form.cleaned_data["b"])
    _with_note_words([old, new])
    changes = expression_diff(old.expression, new.expression)
    sections: dict[str, list[str]] = {}
    for change in changes:
        sections.setdefault(change.section, []).append(change.text)
    context = {"definition": definition, "old": old, "new": new, "sections": sections, "changes": changes}
    return render(request, "cohorts/versions_compare.html", context)


@login_required
@require_POST
def version_restore(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Save version ``number`` again as the newest version (owner only: others see the page, 403 here)."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    if not user_can(request.user, "change_cohortdefinition", definition):
        raise PermissionDenied(_("Only the owner can restore an earlier version."))
    definition_selectors.definition_version_get(definition, number)
    version = definition_services.version_restore(
        definition=definition, number=number, by=request.user, ip_address=client_ip(request)
    )
    messages.success(
        request, _("Version %(old)d restored as version %(new)d.") % {"old": number, "new": version.number}
    )
    return redirect("cohorts:definition_versions", pk=pk)


@login_required
@require_GET
def definition_summary(request: HttpRequest, pk: int) -> HttpResponse:
    """A printable page: the definition, its expression in sentences, its concept sets and the latest counts
    per site, with the privacy rule of the reader's role applied."""
    definition = definition_selectors.definition_get_for_user(request.user, pk)
    latest = definition_selectors.definition_versions(definition).first()
    context = {
        "definition": definition,
        "latest": latest,
        "summary": expression_summary(latest.expression) if latest else None,
        "concept_sets": _concept_sets(latest.expression) if latest else [],
        "counts": run_selectors.latest_counts_per_site(definition, user=request.user),
    }
    return render(request, "cohorts/summary.html", context)


def _concept_sets(expression: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for concept_set in expression.get("ConceptSets") or []:
        items = []
        for item in (concept_set.get("expression") or {}).get("items") or []:
            concept = item.get("concept") or {}
            items.append(
                {
                    "id": concept.get("CONCEPT_ID"),
                    "name": concept.get("CONCEPT_NAME") or "",
                    "vocabulary": concept.get("VOCABULARY_ID") or "",
                    "code": concept.get("CONCEPT_CODE") or "",
                    "descendants": bool(item.get("includeDescendants")),
                    "mapped": bool(item.get("includeMapped")),
                    "excluded": bool(item.get("isExcluded")),
                }
            )
        rows.append({"id": concept_set.get("id"), "name": concept_set.get("name") or "", "items": items})
    return rows
