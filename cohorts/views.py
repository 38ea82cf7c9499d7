"""Pages of cohort definitions and their counts. Thin: forms in, services and selectors out.

Every object is reached through an access selector (``definition_get_for_user``, ``run_request_get_for_user``):
what the user may not see answers 404 exactly like what does not exist. Results leave through
``run_request_result`` only, so the privacy rules are applied to every number shown, polled or downloaded.
"""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import plotly
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.permissions import user_can
from audit.http import client_ip
from cohorts import selectors, services
from cohorts.builder import expression_summary
from cohorts.charts import plotly_page
from cohorts.errors import BrokerUnavailable, RunLimitReached, RunNotCancellable, SourceNotReady
from cohorts.expression import ExpressionError
from cohorts.forms import DefinitionImportForm, RunForm, ShareForm
from cohorts.forms_definitions import CompareForm, DefinitionListForm, DuplicateForm, UnshareForm
from cohorts.versions import expression_diff

DEFINITIONS_PER_PAGE = 50

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_VERSION = package_version("plotly")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _refused(request: HttpRequest, *, message: str, status: int, definition: Any = None) -> HttpResponse:
    """A refused count, as JSON for scripts and as a page for people, with the service's own message."""
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    title = {429: "Too many counts running", 503: "Counting is unavailable"}.get(status, "The count was not started")
    context = {"title": title, "message": message, "definition": definition, "status": status}
    return render(request, "cohorts/run_refused.html", context, status=status)


# --- definitions ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def definition_list(request: HttpRequest) -> HttpResponse:
    """Definitions the user may see: searched, filtered, sorted, 50 a page, each with its latest version and its
    latest count (protected for the user's role)."""
    form = DefinitionListForm(request.GET or None, user=request.user)
    filters = form.filters()
    definitions = selectors.definitions_listed_for_user(request.user, **filters)
    page = Paginator(definitions, DEFINITIONS_PER_PAGE).get_page(request.GET.get("page"))
    counts = selectors.latest_counts([d.pk for d in page.object_list], role=request.user.role)
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
        "can_create": selectors.definition_create_allowed(request.user),
    }
    return render(request, "cohorts/definition_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def definition_import(request: HttpRequest) -> HttpResponse:
    if not selectors.definition_create_allowed(request.user):
        raise Http404("No such page.")
    form = DefinitionImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        definition = _create(request, form, form.cleaned_data["expression"])
        if definition is not None:
            messages.success(request, f"Definition “{definition.name}” imported.")
            return redirect("cohorts:definition_detail", pk=definition.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "cohorts/definition_import.html", {"form": form}, status=status)


def _create(request: HttpRequest, form: Any, expression: dict[str, Any]) -> Any:
    """Create through the service; its refusals become form errors (nothing is written then)."""
    data = form.cleaned_data
    try:
        return services.definition_create_for_user(
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
    definition = selectors.definition_get_for_user(request.user, pk)
    versions = list(definition.versions.select_related("author").order_by("-number"))
    latest = versions[0] if versions else None
    sources = selectors.sources_for_user_and_definition(request.user, definition)
    can_share = user_can(request.user, "share_cohortdefinition", definition)
    context = {
        "definition": definition,
        "versions": versions,
        "latest": latest,
        "summary": expression_summary(latest.expression) if latest else None,
        "run_form": RunForm(sources=sources, initial={"sources": list(sources)}),
        "can_run": user_can(request.user, selectors.RUN, definition),
        "has_sources": sources.exists(),
        "can_share": can_share,
        "share_form": ShareForm(),
        "shares": selectors.definition_shares(definition) if can_share else None,
        "share_candidates": selectors.share_candidates(request.user, definition) if can_share else None,
        "can_duplicate": selectors.definition_create_allowed(request.user),
        "duplicate_form": DuplicateForm(user=request.user),
        "runs": selectors.run_requests_for_user(request.user, definition=definition)[:10],
    }
    return render(request, "cohorts/definition_detail.html", context)


@login_required
@require_GET
def definition_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The ATLAS JSON of a version (the latest unless ``?version=n``), exactly as saved, as a download."""
    definition = selectors.definition_get_for_user(request.user, pk)
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
    definition = selectors.definition_get_for_user(request.user, pk, codename="share_cohortdefinition")
    project_pk = request.POST.get("project", "")
    if project_pk:
        return _share_with_project(request, definition, project_pk)
    form = ShareForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or "Choose whom to share with.")
        return redirect("cohorts:definition_detail", pk=pk)
    try:
        if form.cleaned_data["with_project"]:
            if definition.project is None:
                raise ValidationError("This definition belongs to no project; share it with a person.")
            services.definition_share(
                definition=definition, by=request.user, to_project=definition.project, ip_address=client_ip(request)
            )
            messages.success(request, f"Shared with the members of “{definition.project}”.")
        else:
            # One message for unknown and not-allowed people: the form must not tell which user names exist.
            recipient = User.objects.filter(username=form.cleaned_data["username"].strip()).first()
            if recipient is None or recipient.pk == request.user.pk:
                raise ValidationError("No such person can receive this definition.")
            services.definition_share(
                definition=definition, by=request.user, to_user=recipient, ip_address=client_ip(request)
            )
            messages.success(request, f"Shared with {recipient.username}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("cohorts:definition_detail", pk=pk)


def _share_with_project(request: HttpRequest, definition: Any, project_pk: str) -> HttpResponse:
    """Share with a project chosen from the list of projects the sharer works in (any other id: a message)."""
    candidates = selectors.share_candidates(request.user, definition)["projects"]
    project = candidates.filter(pk=int(project_pk)).first() if project_pk.isdigit() else None
    if project is None:
        messages.error(request, _("Choose a project you work in."))
        return redirect("cohorts:definition_detail", pk=definition.pk)
    try:
        services.definition_share(
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
    definition = selectors.definition_get_for_user(request.user, pk, codename="share_cohortdefinition")
    form = UnshareForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or _("Choose one project or one person."))
        return redirect("cohorts:definition_detail", pk=pk)
    shares = selectors.definition_shares(definition)
    try:
        if form.cleaned_data["project"] is not None:
            project = next((p for p in shares["projects"] if p.pk == form.cleaned_data["project"]), None)
            if project is None:
                raise ValidationError(_("It is not shared with that project."))
            services.definition_unshare(
                definition=definition, by=request.user, from_project=project, ip_address=client_ip(request)
            )
            messages.success(request, _("No longer shared with “%(project)s”.") % {"project": project})
        else:
            person = next((u for u in shares["users"] if u.pk == form.cleaned_data["user"]), None)
            if person is None:
                raise ValidationError(_("It is not shared with that person."))
            services.definition_unshare(
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
    definition = selectors.definition_get_for_user(request.user, pk)
    if not selectors.definition_create_allowed(request.user):
        raise PermissionDenied(_("Your role does not create cohort definitions."))
    form = DuplicateForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, _("Choose a project you work in."))
        return redirect("cohorts:definition_detail", pk=pk)
    try:
        copy = services.definition_duplicate(
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


# --- versions and the printable summary ------------------------------------------------------------------------


@login_required
@require_GET
def definition_versions(request: HttpRequest, pk: int) -> HttpResponse:
    """Every version with its author and time, and the form to compare two of them."""
    definition = selectors.definition_get_for_user(request.user, pk)
    versions = list(selectors.definition_versions(definition))
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
    """Two versions compared in words (``cohorts.versions``); bad numbers → the versions page's form again."""
    definition = selectors.definition_get_for_user(request.user, pk)
    form = CompareForm(request.GET)
    if not form.is_valid():
        versions = list(selectors.definition_versions(definition))
        context = {"definition": definition, "versions": versions, "compare_form": form, "can_restore": False}
        return render(request, "cohorts/versions.html", context, status=400)
    old = selectors.definition_version_get(definition, form.cleaned_data["a"])
    new = selectors.definition_version_get(definition, form.cleaned_data["b"])
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
    definition = selectors.definition_get_for_user(request.user, pk)
    if not user_can(request.user, "change_cohortdefinition", definition):
        raise PermissionDenied(_("Only the owner can restore an earlier version."))
    selectors.definition_version_get(definition, number)
    version = services.version_restore(
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
    definition = selectors.definition_get_for_user(request.user, pk)
    latest = selectors.definition_versions(definition).first()
    context = {
        "definition": definition,
        "latest": latest,
        "summary": expression_summary(latest.expression) if latest else None,
        "concept_sets": _concept_sets(latest.expression) if latest else [],
        "counts": selectors.latest_counts_per_site(definition, role=request.user.role),
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


# --- runs -------------------------------------------------------------------------------------------------------


@login_required
@require_POST
def run_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a count, attrition or demographics of the latest version on the chosen sites.

    Refusals: not allowed to run → 404 (as for a definition not visible); a site not offered → 400; the user's
    limit of concurrent counts → 429; broker down → 503. Nothing is written in any of these cases.
    """
    definition = selectors.definition_get_for_user(request.user, pk, codename=selectors.RUN)
    sources = selectors.sources_for_user_and_definition(request.user, definition)
    form = RunForm(request.POST, sources=sources)
    if not form.is_valid():
        errors = "; ".join(f"{', '.join(e)}" for e in form.errors.values())
        return _refused(request, message=errors or "Choose the sites to count on.", status=400, definition=definition)
    version = definition.latest_version()
    if version is None:
        raise Http404("No version to run.")
    try:
        run_request = services.run_request_create(
            user=request.user,
            version=version,
            sources=list(form.cleaned_data["sources"]),
            kind=form.cleaned_data["kind"],
        )
    except RunLimitReached as exc:
        return _refused(request, message=str(exc), status=429, definition=definition)
    except BrokerUnavailable as exc:
        return _refused(request, message=str(exc), status=503, definition=definition)
    except SourceNotReady as exc:
        return _refused(request, message=str(exc), status=400, definition=definition)
    url = reverse("cohorts:run_detail", kwargs={"pk": run_request.pk})
    if _wants_json(request):
        status_url = reverse("cohorts:run_status", kwargs={"pk": run_request.pk})
        return JsonResponse({"request": run_request.pk, "url": url, "status_url": status_url}, status=201)
    return redirect(url)


def _status(request: HttpRequest, run_request: Any) -> dict[str, Any]:
    result = selectors.run_request_result(request=run_request, role=request.user.role)
    result["can_cancel"] = run_request.requested_by_id == request.user.pk and not (
        result["finished"] or result["cancelled"]
    )
    return result


@login_required
@require_GET
@plotly_page
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run_request = selectors.run_request_get_for_user(request.user, pk)
    definition = run_request.version.definition
    services.run_result_viewed(request=run_request, user=request.user, ip_address=client_ip(request))
    context = {
        "run_request": run_request,
        "definition": definition,
        "result": _status(request, run_request),
        "tables": selectors.RESULT_TABLES,
        "plotly_version": PLOTLY_VERSION,
    }
    return render(request, "cohorts/run_detail.html", context)


@login_required
@require_GET
@never_cache
def run_status(request: HttpRequest, pk: int) -> JsonResponse:
    """The request's state and its protected results, polled by ``static/js/run.js``."""
    run_request = selectors.run_request_get_for_user(request.user, pk)
    return JsonResponse(_status(request, run_request))


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run_request = selectors.run_request_get_for_user(request.user, pk)
    if run_request.requested_by_id != request.user.pk:
        # Visible (shared definition) but somebody else's count: seeing it is allowed, stopping it is not.
        raise PermissionDenied("Only the person who asked for a count can cancel it.")
    try:
        services.run_request_cancel(request=run_request, user=request.user)
        message, status = "Cancelled.", 200
    except RunNotCancellable as exc:
        message, status = str(exc), 409
    if _wants_json(request):
        return JsonResponse({"message": message, **_status(request, run_request)}, status=status)
    (messages.success if status == 200 else messages.info)(request, message)
    return redirect("cohorts:run_detail", pk=pk)


@login_required
@require_GET
@never_cache
def run_table_csv(request: HttpRequest, pk: int, table: str) -> HttpResponse:
    """One table of the result as CSV: the protected numbers exactly as shown ("<10" stays "<10")."""
    run_request = selectors.run_request_get_for_user(request.user, pk)
    result = selectors.run_request_result(request=run_request, role=request.user.role)
    body = selectors.run_result_csv(result, table)
    services.run_result_viewed(request=run_request, user=request.user, ip_address=client_ip(request), export=table)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="count-{run_request.pk}-{table}.csv"'
    return response


# --- assets -----------------------------------------------------------------------------------------------------


@require_GET
@cache_control(public=True, max_age=31_536_000, immutable=True)
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js from the installed plotly package: hospitals' networks reach no CDN, and serving the file
    from the package keeps one copy, upgraded with the package. Pages add ``?v=<version>`` so an upgrade is a new
    URL for caches. Public: it is the library's code, no data."""
    return FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript; charset=utf-8")
