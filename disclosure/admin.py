"""Disclosure policies in the Django admin. Every change is written to the audit log, like the sites' own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from audit.admin import AuditedAdminMixin
from disclosure.models import DisclosurePolicy, ExactCountGrant


@admin.register(DisclosurePolicy)
class DisclosurePolicyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "source",
        "min_cell_size",
        "round_to",
        "aggregate_only_roles",
        "perturbation_max_adjustment",
        "perturbation_variance",
    )
    list_select_related = ("source",)
    ordering = ("source__key",)
    fields = (
        "source",
        ("min_cell_size", "round_to", "aggregate_only_roles"),
        ("perturbation_max_adjustment", "perturbation_variance"),
    )
    audit_add_action = audit_change_action = "configuration_change"

    def audit_source_key(self, obj: DisclosurePolicy) -> str:
        return obj.source.key

    def get_readonly_fields(self, request: Any, obj: DisclosurePolicy | None = None) -> tuple[str, ...]:
        # A policy belongs to its site for good: moving it to another site would silently change both.
        return ("source",) if obj is not None else ()


@admin.register(ExactCountGrant)
class ExactCountGrantAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Read-only: a grant is made and revoked by a steward of its site on the grants page
    (``disclosure.services``), which validates it and records why. The admin lists them for oversight."""

    list_display = ("id", "project", "source", "ends_at", "granted_by", "granted_at", "revoked_at", "revoked_by")
    list_filter = ("source",)
    list_select_related = ("project", "source", "granted_by", "revoked_by")
    search_fields = ("project__title", "reason")
    ordering = ("-granted_at", "-id")

    def audit_source_key(self, obj: ExactCountGrant) -> str:
        return obj.source.key

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: ExactCountGrant | None = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: ExactCountGrant | None = None) -> bool:
        return False
