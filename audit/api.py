"""API endpoint of the audit log: stewards read their site's events, admins all; nobody else learns it exists.

Authentication, the approved-account permission, pagination and the error shape come from the API defaults in
the settings (accounts/api/); audit imports no other app, so the queryset is restricted here through audit's own
selector (``events_visible_to``) rather than through the accounts base viewset.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.request import Request

from audit.models import EVENT_COLUMNS, AuditEvent
from audit.selectors import can_read_audit, events_visible_to


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", *EVENT_COLUMNS]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    """The audit page's filters: action, user name (actor, or the account the event is about), and dates in the
    portal's time zone, both ends included."""

    action = django_filters.CharFilter(field_name="action", max_length=50)
    user = django_filters.CharFilter(method="filter_user", max_length=150)
    date_from = django_filters.DateFilter(method="filter_from", label="From (YYYY-MM-DD)")
    date_to = django_filters.DateFilter(method="filter_to", label="To (YYYY-MM-DD, included)")

    class Meta:
        model = AuditEvent
        fields = ["action", "user", "date_from", "date_to"]

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(actor_username__iexact=value) | Q(object_type="accounts.user", object_repr__iexact=value)
        )

    def filter_from(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset.filter(at__gte=datetime.combine(value, time.min, tzinfo=timezone.get_current_timezone()))

    def filter_to(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        end = datetime.combine(value + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())
        return queryset.filter(at__lt=end)


@extend_schema_view(
    list=extend_schema(summary="Audit events (stewards: their site; admins: all), newest first"),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer
    lookup_value_regex = r"[0-9]+"
    filterset_class = AuditEventFilter

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not can_read_audit(request.user):
            raise Http404("No such page.")

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return events_visible_to(self.request.user).order_by("-at", "-id")
