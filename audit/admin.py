"""The one way a Django admin writes its changes to the audit log.

Every ``ModelAdmin`` of the portal — its own models' and the re-registered ones of Django, allauth and axes — mixes
in ``AuditedAdminMixin``. The admin's own history (``LogEntry``) lives in a table anybody with database access may
edit; the audit log is append-only, so the admin must not be a way around it.

What is recorded: who, the object, and for an addition or a change the *names* of the fields that changed — never
their values, so no password hash, TOTP secret or token reaches the log. Additions and changes are recorded where
the admin records them in its own history (``log_addition`` / ``log_change``: the add and change forms, the list's
editable columns, the user admin's password form), deletions where they happen (``delete_model``, and
``delete_queryset`` for the bulk "delete selected" action), and any other bulk action per selected object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest

from audit.http import client_ip
from audit.services import audit_record

#: Form fields whose names stand for a secret: recorded under one neutral name.
_SECRET_FIELD_NAMES = {"password1": "password", "password2": "password", "usable_password": "password"}
#: Where the names of the changed fields wait between ``construct_change_message`` and ``log_*`` of one request.
_CHANGED_ATTRIBUTE = "_audit_admin_changed_fields"


def _field_names(form: Any) -> list[str]:
    changed = getattr(form, "changed_data", None) or []
    return sorted({_SECRET_FIELD_NAMES.get(name, name) for name in changed})


class AuditedAdminMixin:
    """Mix in before ``admin.ModelAdmin`` (or a subclass such as ``UserAdmin``). A subclass may name its own
    actions (``audit_add_action``…) and the site an object belongs to (``audit_source_key``)."""

    audit_add_action = "admin_add"
    audit_change_action = "admin_change"
    audit_delete_action = "admin_delete"
    audit_bulk_action = "admin_action"

    def audit_source_key(self, obj: models.Model) -> str:
        """The site an object belongs to, so that its steward reads the event ("" for none)."""
        return ""

    def audit(self, request: HttpRequest, *, action: str, obj: models.Model, detail: dict[str, Any]) -> None:
        audit_record(
            action=action,
            actor=request.user,
            obj=obj,
            source_key=self.audit_source_key(obj),
            ip_address=client_ip(request),
            detail=detail,
        )

    # --- additions and changes: where the admin writes its own history ------------------------------------------

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        # Called once per saved object, just before log_addition / log_change, with the form that was saved.
        setattr(request, _CHANGED_ATTRIBUTE, _field_names(form))
        return super().construct_change_message(request, form, formsets, add)  # type: ignore[misc]

    def _changed(self, request: HttpRequest) -> dict[str, Any]:
        return {"changed": getattr(request, _CHANGED_ATTRIBUTE, [])}

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        self.audit(request, action=self.audit_add_action, obj=obj, detail=self._changed(request))
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        self.audit(request, action=self.audit_change_action, obj=obj, detail=self._changed(request))
        return super().log_change(request, obj, message)  # type: ignore[misc]

    # --- deletions: recorded in the transaction that deletes, while the objects still exist ---------------------

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            self.audit(request, action=self.audit_delete_action, obj=obj, detail={})
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.audit(request, action=self.audit_delete_action, obj=obj, detail={"bulk": True})
            super().delete_queryset(request, queryset)  # type: ignore[misc]

    # --- other bulk actions (axes' "clean up", allauth's "mark verified"…) -------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        return {
            name: (func if name == "delete_selected" else self._audited_action(func, name), name, description)
            for name, (func, _name, description) in actions.items()
        }

    def _audited_action(self, func: Callable[..., Any], name: str) -> Callable[..., Any]:
        # delete_selected is recorded by delete_queryset, per object deleted; every other action here, per object
        # selected, in the action's transaction.
        @functools.wraps(func)
        def audited(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet) -> Any:
            with transaction.atomic():
                for obj in queryset:
                    self.audit(request, action=self.audit_bulk_action, obj=obj, detail={"admin_action": name})
                return func(modeladmin, request, queryset)

        return audited
