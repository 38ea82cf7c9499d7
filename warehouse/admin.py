"""Sites in the Django admin. Every configuration change is written to the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction

from audit.services import audit_record
from warehouse.models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "engine", "cdm_version", "is_active", "loaded_at")
    list_filter = ("engine", "is_active")
    readonly_fields = ("fingerprint", "loaded_at", "cdm_version", "created_at", "updated_at")
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

    def save_model(self, request: Any, obj: Source, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="configuration_change" if change else "source.created",
                actor=request.user,
                obj=obj,
                source_key=obj.key,
                ip_address=request.META.get("REMOTE_ADDR"),
                detail={"changed": sorted(form.changed_data)},
            )
