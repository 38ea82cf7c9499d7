"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# What an event shows to its readers, in this order: the page's CSV export and the API both list these, so the
# two never drift apart (the API adds the row id in front).
EVENT_COLUMNS: tuple[str, ...] = (
    "at",
    "actor_username",
    "actor_role",
    "ip_address",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "source_key",
    "outcome",
    "detail",
)


class AuditEvent(models.Model):
    """One thing somebody did, written in the same transaction as the action itself.

    The app has no update or delete path; on PostgreSQL a trigger refuses both (see the migration).
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    actor_role = models.CharField(max_length=20, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=50, db_index=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    source_key = models.CharField(max_length=40, blank=True, db_index=True)
    outcome = models.CharField(max_length=20, default="success")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action} {self.object_repr}"
