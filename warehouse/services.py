"""Writes of the warehouse app: registering a source, connecting to it, loading an OMOP export into it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from warehouse.choices import EngineKind
from warehouse.engines import Engine, WarehouseError, connect, duckdb_path, quote_ident, url_has_password
from warehouse.loader import LoadError, LoadReport, load_cdm_directory
from warehouse.models import SCHEMA_NAME_RE, SOURCE_KEY_RE, Source


def source_connect(source: Source, *, read_only: bool = False) -> Engine:
    """An engine on the source's warehouse, with its password (from the environment) and statement timeout."""
    return connect(
        source.engine,
        source.url,
        password=source.password(),
        statement_timeout_seconds=source.statement_timeout_seconds,
        read_only=read_only,
    )


@transaction.atomic
def source_create(
    *,
    key: str,
    engine: str,
    url: str,
    name: str | None = None,
    cdm_schema: str = "cdm",
    vocabulary_schema: str | None = None,
    results_schema: str = "results",
) -> Source:
    """Register a site's warehouse. Raises ``ValidationError`` with a message per field.

    Nothing is done on the warehouse here (the portal may not reach it; its worker does): the results schema
    is created by ``source_load_omop`` and by the workers when they first write cohorts.
    """
    if not SOURCE_KEY_RE.match(key or ""):
        raise ValidationError(
            {"key": f"bad source key {key!r}: 1-40 lower-case letters, digits or underscores, starting with a letter"}
        )
    if engine not in EngineKind.values:
        raise ValidationError({"engine": f"unknown engine {engine!r}: expected one of {', '.join(EngineKind.values)}"})
    vocabulary_schema = vocabulary_schema or cdm_schema
    for field, value in (("cdm_schema", cdm_schema), ("vocabulary_schema", vocabulary_schema)):
        if not SCHEMA_NAME_RE.match(value or ""):
            raise ValidationError({field: f"bad schema name {value!r}: 1-63 lower-case letters, digits or _"})
    if not SCHEMA_NAME_RE.match(results_schema or ""):
        raise ValidationError({"results_schema": f"bad schema name {results_schema!r}"})
    if results_schema in (cdm_schema, vocabulary_schema):
        # A reload drops and recreates the CDM schema: cohorts written there would vanish with it.
        raise ValidationError({"results_schema": "the results schema must differ from the CDM and vocabulary schemas"})
    _check_url(key, engine, url, (cdm_schema, vocabulary_schema, results_schema))
    if Source.objects.filter(key=key).exists():
        raise ValidationError({"key": f"a source with key {key!r} already exists"})
    source = Source(
        key=key,
        name=name or key,
        engine=engine,
        url=url,
        cdm_schema=cdm_schema,
        vocabulary_schema=vocabulary_schema,
        results_schema=results_schema,
    )
    source.full_clean()
    source.save()
    audit_record(action="source.created", obj=source, source_key=key, detail={"engine": engine, "url": url})
    return source


def _check_url(key: str, engine: str, url: str, schemas: tuple[str, ...]) -> None:
    if engine == EngineKind.POSTGRESQL:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValidationError({"url": "a PostgreSQL source needs a postgresql://USER@HOST:PORT/DB URL"})
        if url_has_password(url):
            variable = f"SOYANG_SOURCE_{key.upper()}_PASSWORD"
            raise ValidationError(
                {
                    "url": "the URL must not contain a password (it would be stored in the portal database): "
                    f"remove it and set {variable} (or {variable}_FILE, a file holding it) in the environment "
                    "of the worker and of the commands that connect"
                }
            )
    else:
        try:
            path = duckdb_path(url)
        except ValueError as exc:
            raise ValidationError({"url": str(exc)}) from exc
        stem = Path(path).name.split(".")[0]
        if stem in schemas:
            # DuckDB names the catalog after the file: "x.person" would be ambiguous in x.duckdb.
            raise ValidationError({"url": f"the DuckDB file name {Path(path).name} clashes with schema {stem!r}"})


def source_load_omop(
    *,
    source: Source,
    directory: Path,
    cdm_version: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> LoadReport:
    """Replace the source's CDM with the OMOP CSV export in ``directory``, then record version, fingerprint and
    load time on the source. Raises ``LoadError``; the warehouse and the source row are then unchanged."""
    try:
        engine = source_connect(source)
    except WarehouseError as exc:
        raise LoadError(f"cannot reach the warehouse of source {source.key}: {exc}") from exc
    with engine:
        report = load_cdm_directory(
            engine, Path(directory), cdm_schema=source.cdm_schema, cdm_version=cdm_version, progress=progress
        )
        try:
            engine.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(source.results_schema)}")
        except WarehouseError as exc:
            raise LoadError(f"the CDM was loaded but the results schema could not be created: {exc}") from exc
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(
            cdm_version=report.cdm_version, fingerprint=report.fingerprint, loaded_at=report.loaded_at
        )
        source.refresh_from_db()
        audit_record(
            action="source.loaded",
            obj=source,
            source_key=source.key,
            detail={"cdm_version": report.cdm_version, "fingerprint": report.fingerprint, "rows": report.total_rows},
        )
    return report
