"""Concept sets saved in projects."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ConceptSet(models.Model):
    """A reusable concept set saved in a project: a Circe ConceptSet expression (``{"items": [...]}``).

    Access is per object (accounts.permissions): the project's members view it, its owners and analysts
    change it, its creator also deletes it.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    expression = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
