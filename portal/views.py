"""Base views: home and health."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.choices import Role
from accounts.permissions import projects_for_user
from cohorts.selectors import definition_create_allowed, definitions_for_user, run_requests_for_user
from warehouse.models import Source


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The start page, by role: researchers see their projects, definitions and recent counts; partners the
    definitions shared with them; stewards and admins their queues (approvals, audit). Everybody sees the sites."""
    user = request.user
    visible = definitions_for_user(user)
    context = {
        "projects": projects_for_user(user)[:20],
        "my_definitions": visible.filter(owner=user)[:10],
        "shared_definitions": visible.exclude(owner=user)[:10],
        "recent_runs": run_requests_for_user(user)[:10],
        "can_create": definition_create_allowed(user),
        "is_manager": user.role in (Role.STEWARD, Role.ADMIN),
        # Which sites exist is no secret (their data is): everybody sees the list and when each was loaded.
        "sources": Source.objects.filter(is_active=True).order_by("key"),
    }
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
