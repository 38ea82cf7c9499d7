"""Sources: one OMOP CDM warehouse of one site."""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
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


class Source(models.Model):
    """The OMOP CDM of one site, reached by the worker next to it.

    The connection URL never holds a password: it comes from ``SOYANG_SOURCE_<KEY>_PASSWORD`` or the file
    named by ``SOYANG_SOURCE_<KEY>_PASSWORD_FILE`` in the environment of the process that connects (for a
    Spark site, the cluster's access token, if it needs one).
    ``fingerprint`` changes whenever the data is reloaded, by Soyang or by the site's own ETL
    (``warehouse.fingerprint``); cached results are keyed on it, and served only while ``fingerprint_checked_at``
    (the last time the site's worker read it) is recent. ``attached_at``: when an existing CDM was attached
    (``attach_source``) rather than loaded by Soyang. What of its counts
    may be shown is the site's disclosure policy, kept by the ``disclosure`` app; the projects that may query it
    are ``projects`` (``project.sources`` from the other side).
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
    fingerprint_checked_at = models.DateTimeField(null=True, blank=True)
    attached_at = models.DateTimeField(null=True, blank=True)
    statement_timeout_seconds = models.PositiveIntegerField(default=600)
    # Declared on this side so that accounts never refers to warehouse (a site belongs to an organisation, and
    # projects are generic); the table is the one Project.sources used to own, so no row moved.
    projects = models.ManyToManyField(
        "accounts.Project", blank=True, related_name="sources", db_table="accounts_project_sources"
    )
    #: Whether the site's worker keeps a count store (PostgreSQL sites, ``warehouse.count_store``), and what it
    #: found when it last compared the store with the CDM (``fresh``, ``stale``, ``missing``) and when.
    count_store = models.BooleanField(
        default=False, help_text="Keep a columnar copy of the CDM beside the worker for fast counts (PostgreSQL)."
    )
    count_store_state = models.CharField(max_length=20, blank=True)
    count_store_checked_at = models.DateTimeField(null=True, blank=True)
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
        if self.engine == EngineKind.SPARK:
            from warehouse.spark_engine import spark_url_parts

            try:
                spark_url_parts(self.url)
            except ValueError as exc:
                raise ValidationError({"url": str(exc)}) from exc
        if self.count_store and self.engine != EngineKind.POSTGRESQL:
            # The store is a columnar copy beside a PostgreSQL site's worker; DuckDB and Spark count fast as they are.
            raise ValidationError({"count_store": "only a PostgreSQL site keeps a count store"})

    @property
    def password_env_var(self) -> str:
        return f"SOYANG_SOURCE_{self.key.upper()}_PASSWORD"

    def password(self) -> str | None:
        """The password from the environment or a secrets file, or None (trust or peer authentication)."""
        file_name = os.environ.get(f"{self.password_env_var}_FILE")
        if file_name:
            return Path(file_name).read_text(encoding="utf-8").strip()
        return os.environ.get(self.password_env_var)


# ---------------------------------------------------------------------------------------------------------------
# The standardized vocabulary: public and identical at every site, so the portal keeps one copy of it.
# Plain integer columns rather than foreign keys: real vocabularies reference concepts outside a given export,
# and the loader replaces the whole copy at once (warehouse.vocabulary).
# ---------------------------------------------------------------------------------------------------------------


class Concept(models.Model):
    """One OMOP concept (table CONCEPT), searched by name, code and id."""

    concept_id = models.IntegerField(primary_key=True)
    concept_name = models.CharField(max_length=255)
    domain_id = models.CharField(max_length=20)
    vocabulary_id = models.CharField(max_length=20)
    concept_class_id = models.CharField(max_length=20)
    standard_concept = models.CharField(max_length=1, blank=True)
    concept_code = models.CharField(max_length=50)
    valid_start_date = models.DateField(null=True)
    valid_end_date = models.DateField(null=True)
    invalid_reason = models.CharField(max_length=1, blank=True)

    class Meta:
        ordering = ["concept_id"]
        indexes = [
            models.Index(fields=["domain_id", "vocabulary_id"], name="concept_domain_vocab"),
            models.Index(fields=["concept_code"], name="concept_code"),
        ]

    def __str__(self) -> str:
        return f"{self.concept_id} {self.concept_name}"


class ConceptAncestor(models.Model):
    """One ancestor/descendant pair of the hierarchy (table CONCEPT_ANCESTOR, self pairs included)."""

    ancestor_concept_id = models.IntegerField()
    descendant_concept_id = models.IntegerField()
    min_levels_of_separation = models.IntegerField()
    max_levels_of_separation = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ancestor_concept_id", "descendant_concept_id"], name="one_ancestry_pair")
        ]
        indexes = [models.Index(fields=["descendant_concept_id"], name="ancestor_descendant")]

    def __str__(self) -> str:
        return f"{self.ancestor_concept_id} > {self.descendant_concept_id}"


class ConceptRelationship(models.Model):
    """One relationship between two concepts (table CONCEPT_RELATIONSHIP), e.g. 'Maps to'."""

    concept_id_1 = models.IntegerField()
    concept_id_2 = models.IntegerField()
    relationship_id = models.CharField(max_length=20)
    invalid_reason = models.CharField(max_length=1, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["concept_id_1", "relationship_id"], name="relationship_from"),
            models.Index(fields=["concept_id_2", "relationship_id"], name="relationship_to"),
        ]

    def __str__(self) -> str:
        return f"{self.concept_id_1} {self.relationship_id} {self.concept_id_2}"


class ConceptWord(models.Model):
    """One distinct word of the concept names (lower case, 3+ letters), rebuilt with every load: the search
    corrects a misspelled word against this short list rather than against millions of names."""

    word = models.CharField(max_length=100, primary_key=True)

    def __str__(self) -> str:
        return self.word


class Vocabulary(models.Model):
    """One vocabulary (table VOCABULARY), for the search filter."""

    vocabulary_id = models.CharField(max_length=20, primary_key=True)
    vocabulary_name = models.CharField(max_length=255)

    class Meta:
        ordering = ["vocabulary_id"]
        verbose_name_plural = "vocabularies"

    def __str__(self) -> str:
        return self.vocabulary_id


class Domain(models.Model):
    """One domain (table DOMAIN), for the search filter."""

    domain_id = models.CharField(max_length=20, primary_key=True)
    domain_name = models.CharField(max_length=255)

    class Meta:
        ordering = ["domain_id"]

    def __str__(self) -> str:
        return self.domain_id


class ConceptCount(models.Model):
    """How often a standard concept occurs at one site: aggregates computed by the site's worker, never rows.

    Stored exact, with the cell key of each count (``record_key``, ``person_key``: 0..255, computed at the site,
    ``warehouse.vocabulary.counts``); every display goes through the site's disclosure policy (``disclosure``),
    which perturbs each count with its key. Counts stored before the sites computed keys have none and are not
    released until the site counts again.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="concept_counts")
    concept_id = models.IntegerField()
    record_count = models.BigIntegerField()
    person_count = models.BigIntegerField()
    record_key = models.PositiveSmallIntegerField(null=True, blank=True)
    person_key = models.PositiveSmallIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "concept_id"], name="one_count_per_site_concept")]
        indexes = [models.Index(fields=["concept_id"], name="concept_count_concept")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.concept_id} {self.record_count}"
