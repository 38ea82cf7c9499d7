"""Base views: home and health."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.choices import Role
from accounts.permissions import projects_for_user
from accounts.selectors import accounts_pending_review, membership_requests_awaiting
from cohorts.definitions.selectors import (
    definition_create_allowed,
    definitions_for_user,
    definitions_shared_with_user,
)
from cohorts.runs.selectors import latest_counts, run_request_state, run_requests_for_user, site_health
from datasets.choices import RequestState
from datasets.selectors import requests_for_user, reviews_awaiting
from warehouse.models import Source

#: How many items each block of a home page lists.
HOME_LIST = 10

#: What the requester does or waits for next, by the state of a dataset request.
NEXT_STEP = {
    RequestState.DRAFT: _("Attach the approval document and submit the request."),
    RequestState.SUBMITTED: _("Waiting for the data stewards of the sites."),
    RequestState.UNDER_REVIEW: _("Waiting for the data stewards of the sites."),
    RequestState.APPROVED: _("Approved: the dataset is being prepared."),
    RequestState.EXTRACTING: _("Approved: the dataset is being prepared."),
    RequestState.READY: _("Download the dataset before it expires."),
    RequestState.DOWNLOADED: _("Downloaded; more downloads until it expires."),
    RequestState.REJECTED: _("Closed: rejected. Open it to read the reason."),
    RequestState.FAILED: _("Closed: the extraction failed. Open it to read the reason."),
    RequestState.EXPIRED: _("Closed: expired."),
    RequestState.REVOKED: _("Closed: revoked. Open it to read the reason."),
    RequestState.WITHDRAWN: _("Closed: withdrawn by you."),
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The start page, by role.

    Researchers: their projects with expiry, their recent definitions and recent counts with state. Partners:
    the cohorts shared with their projects with the latest count as their privacy rule shows it (rounded), and
    their dataset requests with state and next step (a block of its own). Stewards and admins: their approval
    queues with counts (dataset reviews waiting for their sites among them), the health of their sites and a search
    of the audit log. Every list comes from a permission-filtered selector.
    """
    user = request.user
    role = user.role
    context: dict[str, Any] = {"role": role, "can_create": definition_create_allowed(user)}
    if role in (Role.STEWARD, Role.ADMIN):
        context.update(
            is_manager=True,
            pending_accounts=accounts_pending_review(user).count(),
            membership_requests=len(membership_requests_awaiting(user)),
            sites=site_health(user),
            dataset_reviews=reviews_awaiting(user).count(),
        )
    visible = definitions_for_user(user).select_related("project")
    if role == Role.PARTNER:
        shared = list(visible.exclude(owner=user)[:HOME_LIST])
        counts = latest_counts([d.pk for d in shared], user=user)
        context["partner_cohorts"] = [{"definition": d, "count": counts.get(d.pk)} for d in shared]
        context["projects"] = projects_for_user(user).order_by("expires_on")[:HOME_LIST]
        # Only the partner's own requests: a steward's view of requests on its sites is the datasets page.
        mine = requests_for_user(user).filter(requester=user)[:HOME_LIST]
        context["dataset_requests"] = [{"request": r, "next_step": NEXT_STEP.get(r.state, "")} for r in mine]
        return render(request, "home.html", context)
    recent_runs = list(run_requests_for_user(user)[:HOME_LIST])
    context.update(
        projects=projects_for_user(user).order_by("expires_on")[:HOME_LIST],
        my_definitions=visible.filter(owner=user).order_by("-updated_at", "-id")[:HOME_LIST],
        shared_definitions=definitions_shared_with_user(user)[:HOME_LIST],
        recent_runs=[{"request": r, "state": run_request_state(r)} for r in recent_runs],
        today=timezone.localdate(),
    )
    if role not in (Role.STEWARD, Role.ADMIN):
        # Which sites exist is no secret (their data is): researchers see the list and when each was loaded.
        context["sources"] = Source.objects.filter(is_active=True).order_by("key")
    return render(request, "home.html", context)


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: the portal database answers. Says nothing about any site."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means "not ready"
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "up"})
