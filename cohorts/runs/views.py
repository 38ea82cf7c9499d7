"""Pages of counts: start a count, follow it, cancel it, its tables as CSV, the chart library."""

from __future__ import annotations

import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import plotly
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.http import client_ip
from cohorts.definitions import selectors as definition_selectors
from cohorts.runs import selectors as run_selectors
from cohorts.runs import services as run_services
from cohorts.runs import stores
from cohorts.runs.charts import plotly_page
from cohorts.runs.errors import (
    REFUSAL_STATUS,
    BrokerUnavailable,
    RunLimitReached,
    RunNotCancellable,
    SourceNotReady,
)
from cohorts.runs.forms import RunForm
from cohorts.runs.models import CountStoreSync
from warehouse.choices import EngineKind

#: The longest a status request waits for a count to finish (``run_status``), and how often it looks meanwhile.
MAX_WAIT_SECONDS = 2.0
WAIT_STEP_SECONDS = 0.03

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_VERSION = package_version("plotly")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _refused(request: HttpRequest, *, message: str, status: int, definition: Any = None) -> HttpResponse:
    """A refused count, as JSON for scripts and as a page for people, with the service's own message."""
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    title = {429: _("Too many counts running"), 503: _("Counting is unavailable")}.get(
        status, _("The count was not started")
    )
    context = {"title": title, "message": message, "definition": definition, "status": status}
    return render(request, "cohorts/run_refused.html", context, status=status)


@login_required
@require_POST
def run_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a count, attrition or demographics of the latest version on the chosen sites.

    Refusals: not allowed to run → 404 (as for a definition not visible); a site not offered → 400; the user's
    limit of concurrent counts → 429; broker down → 503. Nothing is written in any of these cases.
    """
    definition = definition_selectors.definition_get_for_user(request.user, pk, codename=definition_selectors.RUN)
    sources = run_selectors.sources_for_user_and_definition(request.user, definition)
    form = RunForm(request.POST, sources=sources)
    if not form.is_valid():
        errors = "; ".join(f"{', '.join(e)}" for e in form.errors.values())
        return _refused(
            request, message=errors or _("Choose the sites to count on."), status=400, definition=definition
        )
    version = definition.latest_version()
    if version is None:
        raise Http404("No version to run.")
    try:
        run_request = run_services.run_request_create(
            user=request.user,
            version=version,
            sources=list(form.cleaned_data["sources"]),
            kind=form.cleaned_data["kind"],
        )
    except (RunLimitReached, BrokerUnavailable, SourceNotReady) as exc:
        return _refused(request, message=str(exc), status=REFUSAL_STATUS[type(exc)], definition=definition)
    url = reverse("cohorts:run_detail", kwargs={"pk": run_request.pk})
    if _wants_json(request):
        status_url = reverse("cohorts:run_status", kwargs={"pk": run_request.pk})
        return JsonResponse({"request": run_request.pk, "url": url, "status_url": status_url}, status=201)
    return redirect(url)


def _status(request: HttpRequest, run_request: Any) -> dict[str, Any]:
    return run_selectors.run_request_status_for_user(request.user, run_request)


@login_required
@require_GET
@plotly_page
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run_request = run_selectors.run_request_get_for_user(request.user, pk)
    definition = run_request.definition
    run_services.run_result_viewed(request=run_request, user=request.user, ip_address=client_ip(request))
    context = {
        "run_request": run_request,
        "definition": definition,
        "result": _status(request, run_request),
        "tables": run_selectors.RESULT_TABLES,
        # The characterization's tables beside the age pyramid and the index year, and one section per domain.
        "demographic_tables": ("gender", "race", "ethnicity"),
        "top_tables": [table for table in run_selectors.RESULT_TABLES if table.startswith("top_")],
        "plotly_version": PLOTLY_VERSION,
    }
    return render(request, "cohorts/run_detail.html", context)


@login_required
@require_GET
@never_cache
def run_status(request: HttpRequest, pk: int) -> JsonResponse:
    """The request's state and its protected results, polled by ``static/js/run.js`` and the builder.

    ``?wait=S`` (at most ``MAX_WAIT_SECONDS``) answers as soon as every site has finished, or after S seconds: the
    builder learns a count's end within ``WAIT_STEP_SECONDS`` of it instead of at its next poll. Meanwhile it asks
    one indexed question of the portal database per step (are runs of this request still active?), far less than
    a poll (the whole result, its rights and its privacy rules), which is computed once, at the end."""
    try:
        wait = min(MAX_WAIT_SECONDS, max(0.0, float(request.GET.get("wait") or 0)))
    except ValueError:
        return JsonResponse({"error": "wait: a number of seconds."}, status=400)
    run_request = run_selectors.run_request_get_for_user(request.user, pk)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and run_selectors.run_request_active(run_request):
        time.sleep(WAIT_STEP_SECONDS)
    return JsonResponse(_status(request, run_request))


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run_request = run_selectors.run_request_get_for_user(request.user, pk)
    if run_request.requested_by_id != request.user.pk:
        # Visible (shared definition) but somebody else's count: seeing it is allowed, stopping it is not.
        raise PermissionDenied("Only the person who asked for a count can cancel it.")
    try:
        run_services.run_request_cancel(request=run_request, user=request.user)
        message, status = _("Cancelled."), 200
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
    run_request = run_selectors.run_request_get_for_user(request.user, pk)
    result = run_selectors.run_request_result_for_user(request.user, run_request)
    body = run_selectors.run_result_csv(result, table)
    run_services.run_result_viewed(request=run_request, user=request.user, ip_address=client_ip(request), export=table)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="count-{run_request.pk}-{table}.csv"'
    return response


@require_GET
@cache_control(public=True, max_age=31_536_000, immutable=True)
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js from the installed plotly package: hospitals' networks reach no CDN, and serving the file
    from the package keeps one copy, upgraded with the package. Pages add ``?v=<version>`` so an upgrade is a new
    URL for caches. Public: it is the library's code, no data."""
    return FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript; charset=utf-8")


@login_required
@require_POST
def count_store_sync(request: HttpRequest, pk: int) -> HttpResponse:
    """A steward or admin of the site asks its worker to build or rebuild the site's count store now."""
    source = run_selectors.source_for_store_sync(request.user, pk)
    if source is None:
        raise Http404("No such site.")
    if source.engine != EngineKind.POSTGRESQL:
        messages.error(
            request, _("Only PostgreSQL sites keep a count store; %(site)s counts in place.") % {"site": source.name}
        )
        return redirect("home")
    try:
        sync = stores.store_sync_request(source=source, trigger=CountStoreSync.Trigger.STEWARD, user=request.user)
    except BrokerUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("home")
    if sync.requested_by_id == request.user.pk and sync.trigger == CountStoreSync.Trigger.STEWARD:
        messages.success(request, _("The count store of %(site)s is being rebuilt.") % {"site": source.name})
    else:
        messages.info(request, _("A sync of the count store of %(site)s is already under way.") % {"site": source.name})
    return redirect("home")


def _ids(values: list[str], *, limit: int) -> list[int]:
    """Positive integer ids from a query or form (duplicates dropped); Http404 for anything else."""
    try:
        ids = list(dict.fromkeys(int(value) for value in values))
    except ValueError:
        raise Http404("No such definition.") from None
    if not ids or len(ids) > limit or any(i < 1 for i in ids):
        raise Http404("No such definition.")
    return ids


@login_required
@require_http_methods(["GET", "POST"])
def run_set_new(request: HttpRequest) -> HttpResponse:
    """Count the definitions chosen on the list together, on the sites every one of them may be counted on."""
    data = request.POST if request.method == "POST" else request.GET
    ids = _ids(data.getlist("definitions"), limit=run_services.MAX_SET_SIZE)
    definitions = [
        definition_selectors.definition_get_for_user(request.user, pk, codename=definition_selectors.RUN) for pk in ids
    ]
    sources = run_selectors.sources_for_user_and_definitions(request.user, definitions)
    form = RunForm(request.POST if request.method == "POST" else None, sources=sources)
    if request.method == "POST" and form.is_valid():
        versions = [d.latest_version() for d in definitions]
        if any(version is None for version in versions):
            raise Http404("No version to run.")
        try:
            run_requests = run_services.run_set_create(
                user=request.user,
                versions=versions,
                sources=list(form.cleaned_data["sources"]),
                kind=form.cleaned_data["kind"],
            )
        except (RunLimitReached, BrokerUnavailable, SourceNotReady) as exc:
            return _refused(request, message=str(exc), status=REFUSAL_STATUS[type(exc)])
        query = "&".join(f"requests={r.pk}" for r in run_requests)
        return redirect(f"{reverse('cohorts:run_set_detail')}?{query}")
    status = 400 if request.method == "POST" else 200
    context = {"definitions": definitions, "form": form, "no_site": not sources.exists()}
    return render(request, "cohorts/run_set_new.html", context, status=status)


@login_required
@require_GET
def run_set_detail(request: HttpRequest) -> HttpResponse:
    """The counts of a set, one row per definition and a column per site, refreshed until every one has ended."""
    ids = _ids(request.GET.getlist("requests"), limit=run_services.MAX_SET_SIZE)
    rows = []
    for pk in ids:
        run_request = run_selectors.run_request_get_for_user(request.user, pk)
        rows.append({"request": run_request, "result": _status(request, run_request)})
    sites = sorted({site["source"]: site["site"] for row in rows for site in row["result"]["sites"]}.items())
    for row in rows:
        by_key = {site["source"]: site for site in row["result"]["sites"]}
        row["cells"] = [by_key.get(key) for key, _ in sites]
    finished = all(row["result"]["finished"] or row["result"]["cancelled"] for row in rows)
    return render(request, "cohorts/run_set_detail.html", {"rows": rows, "sites": sites, "finished": finished})
