"""The one function every app records events through."""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.models import AuditEvent


def audit_record(
    *,
    action: str,
    actor: Any = None,
    obj: models.Model | None = None,
    source_key: str = "",
    outcome: str = "success",
    ip_address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the action, so both land or neither does."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_username=getattr(actor, "username", "") if authenticated else "",
        actor_role=getattr(actor, "role", "") if authenticated else "",
        ip_address=ip_address,
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        source_key=source_key,
        outcome=outcome,
        detail=detail or {},
    )
