"""Sites in the Django admin. Every configuration change is written to the audit log."""

from __future__ import annotations

from django.contrib import admin

from audit.admin import AuditedAdminMixin
from warehouse.models import Source


@admin.register(Source)
class SourceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("key", "name", "engine", "cdm_version", "is_active", "loaded_at")
    list_filter = ("engine", "is_active")
    readonly_fields = (
        "fingerprint",
        "fingerprint_checked_at",
        "loaded_at",
        "attached_at",
        "cdm_version",
        "created_at",
        "updated_at",
    )
    fields = (
        "key",
        "name",
        "organisation",
        "engine",
        "url",
        ("cdm_schema", "vocabulary_schema", "results_schema"),
        "statement_timeout_seconds",
        "is_active",
        "cdm_version",
        "fingerprint",
        "loaded_at",
    )
    audit_add_action = "source.created"
    audit_change_action = "configuration_change"

    def audit_source_key(self, obj: Source) -> str:
        return obj.key
