"""Choices of the warehouse app."""

from __future__ import annotations

from django.db import models


class EngineKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    DUCKDB = "duckdb", "DuckDB"
    SPARK = "spark", "Apache Spark"


class CdmVersion(models.TextChoices):
    V53 = "5.3", "OMOP CDM v5.3"
    V54 = "5.4", "OMOP CDM v5.4"
