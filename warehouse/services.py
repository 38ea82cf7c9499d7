"""Writes of the warehouse app: registering a source, connecting to it, loading an OMOP export into it or
attaching the CDM it already has, and keeping its fingerprint current."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from warehouse.attach import CdmInspection, cdm_inspect, inspection_detail
from warehouse.choices import EngineKind
from warehouse.engines import (
    Engine,
    WarehouseError,
    connect,
    create_schema_sql,
    duckdb_path,
    url_has_password,
)
from warehouse.fingerprint import cdm_fingerprint
from warehouse.loader import LoadError, LoadReport, load_cdm_directory
from warehouse.models import SCHEMA_NAME_RE, SOURCE_KEY_RE, Source
from warehouse.spark_engine import spark_url_parts

#: A Spark Connect URL carrying an access token (``sc://host:port/;token=...``): refused, the token is a secret.
_SPARK_TOKEN_RE = re.compile(r";\s*token\s*=", re.IGNORECASE)


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
    elif engine == EngineKind.SPARK:
        if _SPARK_TOKEN_RE.search(url):
            variable = f"SOYANG_SOURCE_{key.upper()}_PASSWORD"
            raise ValidationError(
                {
                    "url": "the URL must not contain a token (it would be stored in the portal database): remove it "
                    f"and set {variable} (or {variable}_FILE, a file holding it), or SOYANG_SPARK_TOKEN, in the "
                    "environment of the worker and of the commands that connect"
                }
            )
        try:
            spark_url_parts(url)
        except ValueError as exc:
            raise ValidationError({"url": str(exc)}) from exc
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
    """Replace the source's CDM with the OMOP CSV export in ``directory``, then record version, fingerprint
    (``warehouse.fingerprint``, read once loaded) and load time on the source; the report returned carries that
    fingerprint. Raises ``LoadError``; the warehouse and the source row are then unchanged."""
    try:
        engine = source_connect(source)
    except WarehouseError as exc:
        raise LoadError(f"cannot reach the warehouse of source {source.key}: {exc}") from exc
    with engine:
        report = load_cdm_directory(
            engine, Path(directory), cdm_schema=source.cdm_schema, cdm_version=cdm_version, progress=progress
        )
        try:
            engine.execute(create_schema_sql(engine.kind, source.results_schema))
        except WarehouseError as exc:
            raise LoadError(f"the CDM was loaded but the results schema could not be created: {exc}") from exc
    # Read on a new connection, once the loading one has closed: PostgreSQL publishes a session's insert counters
    # (part of the fingerprint) when it goes idle or ends, so the workers then read the same fingerprint.
    try:
        with source_connect(source, read_only=True) as reader:
            fingerprint = cdm_fingerprint(reader, source)
    except WarehouseError as exc:
        raise LoadError(f"the CDM was loaded but its fingerprint could not be read: {exc}") from exc
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(
            cdm_version=report.cdm_version,
            fingerprint=fingerprint,
            loaded_at=report.loaded_at,
            fingerprint_checked_at=timezone.now(),
            attached_at=None,
        )
        source.refresh_from_db()
        audit_record(
            action="source.loaded",
            obj=source,
            source_key=source.key,
            detail={"cdm_version": report.cdm_version, "fingerprint": fingerprint, "rows": report.total_rows},
        )
    # The fingerprint the source now carries (the loader's own, in soyang_load, is one of its parts).
    return replace(report, fingerprint=fingerprint)


class AttachRefused(WarehouseError):
    """The CDM lacks what counting reads, or Soyang cannot write its results schema: ``inspection.problems``
    says what, one message each. Nothing was recorded."""

    def __init__(self, inspection: CdmInspection) -> None:
        super().__init__("; ".join(inspection.problems))
        self.inspection = inspection


def source_attach(*, source: Source) -> CdmInspection:
    """Attach the CDM a site already has (one Soyang did not load): inspect it (``warehouse.attach``) and, when
    counting can read everything it needs, record its CDM version and fingerprint on the source, audited.

    Raises ``AttachRefused`` (nothing recorded) when a table or column is missing or the results schema cannot
    be written, and ``WarehouseError`` when the warehouse cannot be reached. Attaching again re-inspects and
    records the current fingerprint.
    """
    with source_connect(source) as engine:
        inspection = cdm_inspect(
            engine,
            cdm_schema=source.cdm_schema,
            vocabulary_schema=source.vocabulary_schema,
            results_schema=source.results_schema,
        )
    if not inspection.ok:
        raise AttachRefused(inspection)
    now = timezone.now()
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(
            cdm_version=inspection.cdm_version,
            fingerprint=inspection.fingerprint,
            loaded_at=now,
            fingerprint_checked_at=now,
            attached_at=now,
        )
        source.refresh_from_db()
        audit_record(action="source.attached", obj=source, source_key=source.key, detail=inspection_detail(inspection))
    return inspection


def source_fingerprint_confirm(engine: Engine, *, source: Source) -> str:
    """Read the fingerprint of the source's CDM now (``engine``: a connection to it) and record it: the time it was
    confirmed always, the fingerprint and ``loaded_at`` when it changed (audited). Returns the fingerprint.

    Called by the site's worker before each count and by the periodic check, so that the portal never serves a
    cached result computed on data the site no longer holds (``cohorts.runs.services``). ``source`` is updated
    in place.
    """
    fingerprint = cdm_fingerprint(engine, source)
    now = timezone.now()
    previous = source.fingerprint
    if fingerprint == previous:
        Source.objects.filter(pk=source.pk).update(fingerprint_checked_at=now)
    else:
        with transaction.atomic():
            # Conditional: of two workers seeing the same change, one records (and audits) it.
            changed = Source.objects.filter(pk=source.pk, fingerprint=previous).update(
                fingerprint=fingerprint, loaded_at=now, fingerprint_checked_at=now
            )
            if changed:
                audit_record(
                    action="source.fingerprint_changed",
                    obj=source,
                    source_key=source.key,
                    detail={"previous": previous, "fingerprint": fingerprint},
                )
            else:
                Source.objects.filter(pk=source.pk).update(fingerprint=fingerprint, fingerprint_checked_at=now)
        source.loaded_at = now
    source.fingerprint, source.fingerprint_checked_at = fingerprint, now
    return fingerprint


def source_fingerprint_check(*, source_id: int) -> str:
    """At the site (periodic task on its queue): confirm the fingerprint of an active source that has data.
    Returns what happened, for the task's result; raises ``WarehouseError`` when the CDM cannot be read."""
    source = Source.objects.filter(pk=source_id, is_active=True).exclude(fingerprint="").first()
    if source is None:
        return "not active or no data"
    previous = source.fingerprint
    with source_connect(source, read_only=True) as engine:
        fingerprint = source_fingerprint_confirm(engine, source=source)
    return "unchanged" if fingerprint == previous else "changed"
