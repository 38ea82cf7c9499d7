"""Pages of a cohort comparison: choose the sites, follow the work, see the overlap chart and table, CSV, cancel."""

from __future__ import annotations

import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.http import client_ip
from cohorts.definitions import selectors as definition_selectors
from cohorts.runs import comparison_selectors as selectors
from cohorts.runs import comparison_services as services
from cohorts.runs.charts import plotly_page
from cohorts.runs.errors import REFUSAL_STATUS, BrokerUnavailable, RunLimitReached, RunNotCancellable, SourceNotReady
from cohorts.runs.forms import ComparisonForm
from cohorts.runs.overlap import MAX_COHORTS, MIN_COHORTS
from cohorts.runs.selectors import sources_for_user_and_definitions
from cohorts.runs.views import MAX_WAIT_SECONDS, PLOTLY_VERSION, WAIT_STEP_SECONDS, _wants_json


def _chosen_ids(values: list[str]) -> list[int] | None:
    """The definition ids ticked on the list (duplicates dropped), None when a value is not an id."""
    try:
        ids = list(dict.fromkeys(int(value) for value in values))
    except ValueError:
        return None
    return ids if all(i > 0 for i in ids) else None


def _wrong_number(request: HttpRequest, chosen: int) -> HttpResponse:
    message = _("Choose %(min)s to %(max)s definitions to compare (you chose %(n)s).") % {
        "min": MIN_COHORTS,
        "max": MAX_COHORTS,
        "n": chosen,
    }
    if _wants_json(request):
        return JsonResponse({"error": message}, status=400)
    context = {"message": message}
    return render(request, "cohorts/comparison_refused.html", context, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def comparison_new(request: HttpRequest) -> HttpResponse:
    """Compare the 2-4 definitions ticked on the list, on the sites where every one of them may be counted.

    A definition the user may not run answers 404, as a missing one; a wrong number of definitions, a page that
    says so (400); a site not offered, 400; the user's limit, 429; no broker, 503. Nothing is written then."""
    data = request.POST if request.method == "POST" else request.GET
    ids = _chosen_ids(data.getlist("definitions"))
    if ids is None:
        raise Http404("No such definition.")
    if not MIN_COHORTS <= len(ids) <= MAX_COHORTS:
        return _wrong_number(request, len(ids))
    definitions = [
        definition_selectors.definition_get_for_user(request.user, pk, codename=definition_selectors.RUN) for pk in ids
    ]
    sources = sources_for_user_and_definitions(request.user, definitions)
    form = ComparisonForm(request.POST if request.method == "POST" else None, sources=sources)
    if request.method == "POST" and form.is_valid():
        versions = [d.latest_version() for d in definitions]
        if any(version is None for version in versions):
            raise Http404("No version to compare.")
        try:
            comparison = services.comparison_create(
                user=request.user, versions=versions, sources=list(form.cleaned_data["sources"])
            )
        except (RunLimitReached, BrokerUnavailable, SourceNotReady) as exc:
            status = 400 if isinstance(exc, SourceNotReady) else REFUSAL_STATUS[type(exc)]
            if _wants_json(request):
                return JsonResponse({"error": str(exc)}, status=status)
            return render(request, "cohorts/comparison_refused.html", {"message": str(exc)}, status=status)
        return redirect("cohorts:comparison_detail", pk=comparison.pk)
    status = 400 if request.method == "POST" else 200
    letters = selectors.LETTERS
    context = {
        "definitions": [(letters[i], d) for i, d in enumerate(definitions)],
        "form": form,
        "no_site": not sources.exists(),
    }
    return render(request, "cohorts/comparison_new.html", context, status=status)


@login_required
@require_GET
def comparison_list(request: HttpRequest) -> HttpResponse:
    """The user's comparisons, newest first (only those they may still see)."""
    rows = selectors.comparisons_for_user(request.user)
    return render(request, "cohorts/comparison_list.html", {"rows": rows})


def _status(request: HttpRequest, comparison: Any) -> dict[str, Any]:
    return selectors.comparison_result_for_user(request.user, comparison)


@login_required
@require_GET
@plotly_page
def comparison_detail(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get_for_user(request.user, pk)
    services.comparison_viewed(comparison=comparison, user=request.user, ip_address=client_ip(request))
    context = {"comparison": comparison, "result": _status(request, comparison), "plotly_version": PLOTLY_VERSION}
    return render(request, "cohorts/comparison_detail.html", context)


@login_required
@require_GET
@never_cache
def comparison_status(request: HttpRequest, pk: int) -> JsonResponse:
    """The comparison's state and protected result, polled by ``static/js/comparison.js`` (``?wait=S`` as a
    count's status: answers as soon as every site has ended, or after at most ``MAX_WAIT_SECONDS``)."""
    try:
        wait = min(MAX_WAIT_SECONDS, max(0.0, float(request.GET.get("wait") or 0)))
    except ValueError:
        return JsonResponse({"error": "wait: a number of seconds."}, status=400)
    comparison = selectors.comparison_get_for_user(request.user, pk)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and selectors.comparison_active(comparison):
        time.sleep(WAIT_STEP_SECONDS)
    return JsonResponse(_status(request, comparison))


@login_required
@require_POST
def comparison_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get_for_user(request.user, pk)
    try:
        services.comparison_cancel(comparison=comparison, user=request.user)
        message, status = _("Cancelled."), 200
    except RunNotCancellable:
        message, status = _("This comparison has already finished."), 409
    if _wants_json(request):
        return JsonResponse({"message": message, **_status(request, comparison)}, status=status)
    (messages.success if status == 200 else messages.info)(request, message)
    return redirect("cohorts:comparison_detail", pk=pk)


@login_required
@require_GET
@never_cache
def comparison_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """The protected result as CSV, exactly the numbers the page shows ("<10" stays "<10")."""
    comparison = selectors.comparison_get_for_user(request.user, pk)
    body = selectors.comparison_csv(_status(request, comparison))
    services.comparison_viewed(
        comparison=comparison, user=request.user, ip_address=client_ip(request), export="overlap"
    )
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="comparison-{comparison.pk}.csv"'
    return response
