"""The base of every API viewset: its queryset is restricted once, through the permission selectors.

A subclass says which objects the caller may see in ``restrict(user)`` (a selector call such as
``definitions_for_user(user)``); ``get_queryset`` never returns anything else, so list, detail and every action
work on the same restricted set, and an object outside it answers 404 exactly like a missing one (NetBox's
``RestrictedQuerySet`` in its base viewset; Zulip's "same error for missing and inaccessible").
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.request import Request

from audit.http import client_ip


class RestrictedViewSetMixin:
    #: The model of the restricted queryset (for the schema and for filters; never queried directly).
    model: type[Model]
    #: Ids are integers: anything else in the id's place matches no route (a JSON 404), never a lookup.
    lookup_value_regex = r"[0-9]+"

    def restrict(self, user: Any) -> QuerySet:
        raise NotImplementedError(f"{type(self).__name__} must restrict its queryset through a selector")

    def get_queryset(self) -> QuerySet:
        request: Request = self.request  # type: ignore[attr-defined]
        if getattr(self, "swagger_fake_view", False):
            # Schema generation: no caller, no objects; only the model matters.
            return self.model._default_manager.none()
        return self.restrict(request.user)

    def client_ip(self) -> str | None:
        return client_ip(self.request._request)  # type: ignore[attr-defined]


class RestrictedReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """List and detail of the restricted queryset, plus whatever actions the subclass adds."""


class RestrictedGenericViewSet(RestrictedViewSetMixin, viewsets.GenericViewSet):
    """No default routes: the subclass mixes in exactly what it offers."""
