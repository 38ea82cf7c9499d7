"""Cohort definitions and their immutable versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CohortDefinition(models.Model):
    """A named cohort definition inside a project. Its content lives in immutable versions."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cohort_definitions")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        permissions = [
            ("run_cohortdefinition", "Run counts of the definition"),
            ("share_cohortdefinition", "Share the definition"),
            ("request_dataset_cohortdefinition", "Request a dataset for the definition"),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> CohortDefinitionVersion | None:
        return self.versions.order_by("-number").first()


class CohortDefinitionVersion(models.Model):
    """One saved state of a definition: the ATLAS/Circe expression exactly as saved, never changed.

    ``expression_hash`` is the SHA-256 of the normalized expression: identical definitions share it, which
    is what the result cache is keyed on.
    """

    definition = models.ForeignKey(CohortDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    expression = models.JSONField()
    expression_hash = models.CharField(max_length=64, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [models.UniqueConstraint(fields=["definition", "number"], name="one_version_number")]

    def __str__(self) -> str:
        return f"{self.definition} v{self.number}"
