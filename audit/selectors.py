"""Reads of the audit log: who may read which events, and the filters of the audit pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditEvent


def _is_approved(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(
        getattr(user, "is_authenticated", False) and user.is_active and getattr(user, "status", "") == "approved"
    )


def can_read_audit(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins and data stewards (of an organisation) read the audit log; nobody else learns it exists."""
    if not _is_approved(user):
        return False
    return user.role == "admin" or (user.role == "steward" and user.organisation_id is not None)


def events_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[AuditEvent]:
    """Admins: every event. A data steward: its site's events — those about one of its organisation's sources
    (``source_key``, every site of a multi-site event) — and those by or about its organisation's people.
    Others: none.

    audit depends on no app, so the organisation's users and sources are reached through the app registry.
    """
    if not can_read_audit(user):
        return AuditEvent.objects.none()
    if user.role == "admin":
        return AuditEvent.objects.all()
    organisation_id = user.organisation_id
    user_model = apps.get_model("accounts", "User")
    people = user_model.objects.filter(organisation_id=organisation_id)
    source_keys: list[str] = []
    if apps.is_installed("warehouse"):
        sources = apps.get_model("warehouse", "Source").objects.filter(organisation_id=organisation_id)
        source_keys = list(sources.values_list("key", flat=True))
    person_ids = [str(pk) for pk in people.values_list("pk", flat=True)]
    return AuditEvent.objects.filter(
        events_of_sites_q(source_keys)
        | Q(actor__in=people)
        | Q(object_type=user_model._meta.label_lower, object_id__in=person_ids)
    )


def events_of_sites_q(source_keys: list[str]) -> Q:
    """Events about any of these sites. An event that spans sites (a federated count, a multi-site dataset
    request) names them all in ``source_key``, joined by commas ("demo,other"): it is an event of each. A key
    matches only as a whole element of that list, never as a part of one ("demo" does not match "demo2")."""
    q = Q(pk__in=[])
    for key in source_keys:
        if not key or "," in key:
            continue  # an empty key or one with the separator would match other sites' events
        q |= (
            Q(source_key=key)
            | Q(source_key__startswith=f"{key},")
            | Q(source_key__endswith=f",{key}")
            | Q(source_key__contains=f",{key},")
        )
    return q


@dataclass(frozen=True)
class AuditFilter:
    """The audit pages' filters, all optional: action, user name (the actor, or the account an event is about)
    and a date range in the portal's time zone, both ends included."""

    action: str = ""
    username: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_params(self) -> dict[str, str]:
        return {
            "action": self.action,
            "user": self.username,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }


def _parse_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def audit_filter_from_params(params: Any) -> AuditFilter:
    return AuditFilter(
        action=(params.get("action") or "").strip()[:50],
        username=(params.get("user") or "").strip()[:150],
        date_from=_parse_date(params.get("from")),
        date_to=_parse_date(params.get("to")),
    )


def events_filtered(*, user: AbstractBaseUser, audit_filter: AuditFilter) -> QuerySet[AuditEvent]:
    events = events_visible_to(user)
    if audit_filter.action:
        events = events.filter(action=audit_filter.action)
    if audit_filter.username:
        events = events.filter(
            Q(actor_username__iexact=audit_filter.username)
            | Q(object_type="accounts.user", object_repr__iexact=audit_filter.username)
        )
    zone = timezone.get_current_timezone()
    if audit_filter.date_from:
        events = events.filter(at__gte=datetime.combine(audit_filter.date_from, time.min, tzinfo=zone))
    if audit_filter.date_to:
        events = events.filter(at__lt=datetime.combine(audit_filter.date_to + timedelta(days=1), time.min, tzinfo=zone))
    return events.order_by("-at", "-id")


def actions_visible_to(user: AbstractBaseUser) -> list[str]:
    return sorted(set(events_visible_to(user).values_list("action", flat=True).distinct()))
