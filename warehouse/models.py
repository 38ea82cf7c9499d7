"""Sources: one OMOP CDM warehouse of one site."""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from warehouse.choices import CdmVersion, EngineKind

# Source keys name Celery queues (site.<key>) and environment variables (SOYANG_SOURCE_<KEY>_PASSWORD):
# keep them to lower-case letters, digits and underscores.
SOURCE_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SCHEMA_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

validate_source_key = RegexValidator(
    SOURCE_KEY_RE, "a source key is 1-40 lower-case letters, digits or underscores, starting with a letter"
)
validate_schema_name = RegexValidator(
    SCHEMA_NAME_RE, "a schema name is 1-63 lower-case letters, digits or underscores, not starting with a digit"
)


def default_aggregate_only_roles() -> list[str]:
    return ["partner"]


class Source(models.Model):
    """The OMOP CDM of one site, reached by the worker next to it.

    The connection URL never holds a password: it comes from ``SOYANG_SOURCE_<KEY>_PASSWORD`` or the file
    named by ``SOYANG_SOURCE_<KEY>_PASSWORD_FILE`` in the environment of the process that connects.
    ``fingerprint`` changes whenever the data is reloaded; cached results are keyed on it.
    """

    key = models.CharField(max_length=40, unique=True, validators=[validate_source_key])
    name = models.CharField(max_length=200)
    organisation = models.ForeignKey(
        "accounts.Organisation", null=True, blank=True, on_delete=models.PROTECT, related_name="sources"
    )
    engine = models.CharField(max_length=20, choices=EngineKind.choices)
    url = models.CharField(max_length=500, help_text="Connection URL without password.")
    cdm_schema = models.CharField(max_length=63, default="cdm", validators=[validate_schema_name])
    vocabulary_schema = models.CharField(max_length=63, default="cdm", validators=[validate_schema_name])
    results_schema = models.CharField(max_length=63, default="results", validators=[validate_schema_name])
    cdm_version = models.CharField(max_length=5, choices=CdmVersion.choices, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    loaded_at = models.DateTimeField(null=True, blank=True)
    statement_timeout_seconds = models.PositiveIntegerField(default=600)
    # Privacy rules of the site, applied to every number before it leaves the service layer (cohorts.privacy)
    # and shown next to it: counts 1..min_cell_size-1 are hidden; roles listed in aggregate_only_roles also get
    # counts rounded to the nearest round_to.
    min_cell_size = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Counts from 1 to this minus one are hidden."
    )
    round_to = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Aggregate-only roles see counts rounded to this."
    )
    aggregate_only_roles = models.JSONField(
        default=default_aggregate_only_roles,
        blank=True,
        help_text="Roles that see rounded aggregate counts only (e.g. partner).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def clean(self) -> None:
        if self.engine == EngineKind.POSTGRESQL and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValidationError({"url": "a PostgreSQL source needs a postgresql://USER@HOST/DB URL"})
        if self.engine == EngineKind.DUCKDB and not self.url.startswith("duckdb:///"):
            raise ValidationError({"url": "a DuckDB source needs a duckdb:////absolute/path.duckdb URL"})

    @property
    def password_env_var(self) -> str:
        return f"SOYANG_SOURCE_{self.key.upper()}_PASSWORD"

    def password(self) -> str | None:
        """The password from the environment or a secrets file, or None (trust or peer authentication)."""
        file_name = os.environ.get(f"{self.password_env_var}_FILE")
        if file_name:
            return Path(file_name).read_text(encoding="utf-8").strip()
        return os.environ.get(self.password_env_var)
