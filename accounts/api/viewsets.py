"""The base of every API viewset: its queryset is restricted through the permission selectors, and each action is
restricted once more by what it needs.

A subclass says which objects the caller may see in ``restrict(user)`` (a selector call such as
``definitions_for_user(user)``); ``get_queryset`` never returns anything else, so list, detail and every action
work on the same restricted set, and an object outside it answers 404 exactly like a missing one (NetBox's
``RestrictedQuerySet`` in its base viewset; Zulip's "same error for missing and inaccessible").

What an action needs beyond seeing its object is resolved once, in ``initial()``, as NetBox's ``BaseViewSet`` maps
the HTTP method to view, add, change or delete: the action's own need when ``action_needs`` names one (``submit``,
``decide``…), its method's otherwise (``METHOD_NEEDS``). ``get_object()`` is the one place an action reaches its
object, and it asks the need's rule there (``object_rules``). One difference from NetBox, on purpose: an object the
caller sees but may not act on answers 403 with the rule's reason rather than 404, since the caller knows it exists
already; so the action's rule is asked of the object reached, not folded into the queryset. No action re-checks by
hand what its rule says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from accounts.models import User
from audit.http import client_ip

VIEW, CHANGE, DELETE = "view", "change", "delete"

#: What an HTTP method needs of the object it acts on, when the action names no need of its own. A POST on an
#: object (a detail action) changes it; a POST that creates reaches no object, so no object rule applies to it.
METHOD_NEEDS: dict[str, str] = {
    "GET": VIEW,
    "HEAD": VIEW,
    "OPTIONS": VIEW,
    "POST": CHANGE,
    "PUT": CHANGE,
    "PATCH": CHANGE,
    "DELETE": DELETE,
}

#: A rule: ``rule(user, obj)`` answers whether the user may act; a false answer's text (``str``) is the refusal.
#: It may also raise ``PermissionDenied`` itself, with the refusal of the app's own check.
ObjectRule = Callable[[Any, Any], object]


class Refusal:
    """A false answer that says why: what ``refusing`` gives for a plain yes/no test."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.reason


def refusing(test: Callable[[Any, Any], bool], reason: str) -> ObjectRule:
    """A yes/no ``test(user, obj)`` as an object rule, refused with ``reason``."""

    def rule(user: User, obj: Any) -> object:
        return True if test(user, obj) else Refusal(reason)

    return rule


class RestrictedViewSetMixin:
    #: The model of the restricted queryset (for the schema and for filters; never queried directly).
    model: type[Model]
    #: Ids are integers: anything else in the id's place matches no route (a JSON 404), never a lookup.
    lookup_value_regex = r"[0-9]+"
    #: The need of each action that is not its HTTP method's, e.g. ``{"submit": "submit"}``.
    action_needs: ClassVar[Mapping[str, str]] = {}
    #: The rule of each need beyond seeing the object (``view`` never has one: seeing is ``restrict``). A need
    #: without a rule asks nothing more than reaching the object.
    object_rules: ClassVar[Mapping[str, ObjectRule]] = {}
    #: What the current action needs, resolved in ``initial()``.
    need: str = VIEW

    def restrict(self, user: User) -> QuerySet:
        raise NotImplementedError(f"{type(self).__name__} must restrict its queryset through a selector")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        action = getattr(self, "action", None)
        self.need = self.action_needs.get(action or "") or METHOD_NEEDS.get(request.method or "", VIEW)

    def get_queryset(self) -> QuerySet:
        request: Request = self.request  # type: ignore[attr-defined]
        if getattr(self, "swagger_fake_view", False):
            # Schema generation: no caller, no objects; only the model matters.
            return self.model._default_manager.none()
        return self.restrict(request.user)

    def action_object(self) -> Any:
        """The object the action acts on: the detail object of the restricted queryset (404 outside it). A subclass
        whose actions act on something reached from it (a site's review of a request) returns that instead."""
        return super().get_object()  # type: ignore[misc]

    def get_object(self) -> Any:
        """The action's object, refused with 403 and the reason when the rule of the action's need says no."""
        obj = self.action_object()
        rule = self.object_rules.get(self.need)
        if rule is not None:
            answer = rule(self.request.user, obj)  # type: ignore[attr-defined]
            if not answer:
                # A bare False carries no reason: DRF's own sentence then.
                raise PermissionDenied(None if isinstance(answer, bool) else str(answer))
        return obj

    def client_ip(self) -> str | None:
        return client_ip(self.request._request)  # type: ignore[attr-defined]


class RestrictedReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """List and detail of the restricted queryset, plus whatever actions the subclass adds."""


class RestrictedGenericViewSet(RestrictedViewSetMixin, viewsets.GenericViewSet):
    """No default routes: the subclass mixes in exactly what it offers."""
