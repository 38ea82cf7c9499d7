"""Audit log pages: the list with filters, and the CSV export (itself audited)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.http import client_ip
from audit.models import EVENT_COLUMNS, AuditEvent
from audit.selectors import actions_visible_to, audit_filter_from_params, can_read_audit, events_filtered
from audit.services import audit_record
from audit.spreadsheet_guard import spreadsheet_safe_cell

CSV_COLUMNS = EVENT_COLUMNS


def _require_reader(request: HttpRequest) -> None:
    # 404 and not 403: for others the audit pages do not exist.
    if not can_read_audit(request.user):
        raise Http404("no such page")


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    audit_filter = audit_filter_from_params(request.GET)
    events = events_filtered(user=request.user, audit_filter=audit_filter)
    page = Paginator(events, settings.AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter": audit_filter,
        "actions": actions_visible_to(request.user),
        "query": "&".join(f"{k}={v}" for k, v in audit_filter.as_params().items() if v),
    }
    return render(request, "audit/event_list.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events:
        row = [getattr(event, column) for column in CSV_COLUMNS]
        row[0] = timezone.localtime(event.at).isoformat()
        row[-1] = json.dumps(event.detail, ensure_ascii=False, sort_keys=True)
        yield writer.writerow([spreadsheet_safe_cell(value) for value in row])


@login_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered events as CSV. The export is recorded first (who, filter, how many rows), so that reading
    the log out of the portal leaves a trace in it."""
    _require_reader(request)
    audit_filter = audit_filter_from_params(request.GET)
    events = events_filtered(user=request.user, audit_filter=audit_filter)
    with transaction.atomic():
        audit_record(
            action="audit_export",
            actor=request.user,
            ip_address=client_ip(request),
            detail={"filter": audit_filter.as_params(), "rows": events.count()},
        )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        _csv_rows(events.iterator(chunk_size=2000)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="soyang-audit-{stamp}.csv"'
    return response
