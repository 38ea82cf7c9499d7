"""Disclosure policies in the Django admin. Every change is written to the audit log, like the sites' own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction

from audit.services import audit_record
from disclosure.models import DisclosurePolicy


@admin.register(DisclosurePolicy)
class DisclosurePolicyAdmin(admin.ModelAdmin):
    list_display = ("source", "min_cell_size", "round_to", "aggregate_only_roles")
    list_select_related = ("source",)
    ordering = ("source__key",)
    fields = ("source", ("min_cell_size", "round_to", "aggregate_only_roles"))

    def get_readonly_fields(self, request: Any, obj: DisclosurePolicy | None = None) -> tuple[str, ...]:
        # A policy belongs to its site for good: moving it to another site would silently change both.
        return ("source",) if obj is not None else ()

    def save_model(self, request: Any, obj: DisclosurePolicy, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="configuration_change",
                actor=request.user,
                obj=obj,
                source_key=obj.source.key,
                ip_address=request.META.get("REMOTE_ADDR"),
                detail={"changed": sorted(form.changed_data)},
            )
