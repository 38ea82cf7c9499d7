"""Record keys at the site: the secret each site keeps, and the table of its persons' keys beside the CDM.

Runs in the site's worker only. The secret comes from the worker's environment —
``SOYANG_SOURCE_<KEY>_RECORD_KEY_SECRET``, or the file named by ``SOYANG_SOURCE_<KEY>_RECORD_KEY_SECRET_FILE`` —
never from the portal's database, and it never reaches the warehouse either: keys are computed in this process
(``disclosure.cellkey.record_key``) and bulk-loaded into ``<results>.soyang_record_key_<source key>`` (one table
per site, so that two sites registered on one results schema never read each other's keys). A development machine
(the demo, the tests) may instead name a directory in ``SOYANG_RECORD_KEY_SECRET_DIR``, where a random secret
per site is made on first use and kept (mode 0600); production settings leave it unset, so a site without its
secret counts nothing and says why.

Freshness: a person's key is a pure function of the secret and the person id, so a key, once written, stays
right for as long as the secret does. What a reload of the CDM can leave behind is persons without a key.
Every count query reports how many of its persons had none (``unkeyed``); the worker then keys the missing
persons (``record_keys_fill``) and counts again, and refuses to release a count that still has unkeyed persons.
Changing a site's secret needs ``record_keys_rebuild`` (every key changes, hence every released number once).

On Spark (no DELETE, no temporary tables, no unique constraint on Parquet tables) the table is a Parquet table;
the keys computed here travel to the cluster as a DataFrame (Arrow, in batches) read through a temporary view of
this engine's session, and are appended with an anti-join on the table, so a person already keyed is never
written twice by one worker; a rebuild overwrites the whole table (INSERT OVERWRITE). Spark has no lock to make
two workers' fills of the same persons exclusive: the site's worker keys its persons one job at a time.
"""

from __future__ import annotations

import csv
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from disclosure.cellkey import record_key
from warehouse.engines import Engine, WarehouseError, create_schema_sql, quote_ident
from warehouse.spark_catalog import table_names

RECORD_KEY_TABLE_PREFIX = "soyang_record_key_"
#: The shortest secret a site may use (bytes): HMAC-SHA256 keys shorter than this are guessable offline.
MIN_SECRET_BYTES = 16


class RecordKeyError(WarehouseError):
    """The site cannot key its persons: no secret, a secret too short, or persons left without a key."""


def record_key_secret_variable(source_key: str) -> str:
    return f"SOYANG_SOURCE_{source_key.upper()}_RECORD_KEY_SECRET"


def record_key_secret(source_key: str) -> bytes:
    """The record-key secret of the site ``source_key``, from this process's environment (see the module)."""
    variable = record_key_secret_variable(source_key)
    file_name = os.environ.get(f"{variable}_FILE")
    if file_name:
        try:
            secret = Path(file_name).read_bytes().strip()
        except OSError as exc:
            raise RecordKeyError(f"{variable}_FILE names {file_name}, which cannot be read: {exc}") from None
    elif os.environ.get(variable):
        secret = os.environ[variable].encode("utf-8")
    elif getattr(settings, "SOYANG_RECORD_KEY_SECRET_DIR", None):
        secret = _development_secret(Path(settings.SOYANG_RECORD_KEY_SECRET_DIR), source_key)
    else:
        raise RecordKeyError(
            f"The site has no record-key secret: set {variable} (or {variable}_FILE, a file holding it) in the "
            "environment of its worker. Without it the site's counts cannot be perturbed, so none is released."
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise RecordKeyError(f"{variable} must hold at least {MIN_SECRET_BYTES} bytes")
    return secret


def _development_secret(directory: Path, source_key: str) -> bytes:
    """A random secret per site kept under ``directory`` (made on first use): for the demo and the tests."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{source_key}.secret"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def record_key_table_name(source_key: str) -> str:
    """The (unquoted) name of a site's record-key table; source keys are lower-case identifiers."""
    return f"{RECORD_KEY_TABLE_PREFIX}{source_key.lower()}"


def record_key_table(results_schema: str, source_key: str) -> str:
    """The SQL name of a site's record-key table."""
    return f"{quote_ident(results_schema)}.{quote_ident(record_key_table_name(source_key))}"


def _table_exists(engine: Engine, results_schema: str, source_key: str) -> bool:
    if engine.kind == "spark":  # no information_schema on Spark
        return record_key_table_name(source_key) in table_names(engine, [results_schema]).get(results_schema, set())
    row = engine.fetchone(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %(schema)s AND table_name = %(table)s",
        {"schema": results_schema, "table": record_key_table_name(source_key)},
    )
    return bool(row and row[0])


def record_keys_ensure(engine: Engine, *, source: Any) -> str:
    """The record-key table of ``source`` (SQL name), created and filled when missing (one catalog query when
    it exists). The secret is read first, so a site without one fails before touching its database."""
    secret = record_key_secret(source.key)
    table = record_key_table(source.results_schema, source.key)
    if not _table_exists(engine, source.results_schema, source.key):
        try:
            with engine.transaction():
                engine.execute(create_schema_sql(engine.kind, source.results_schema))
                # Spark: a Parquet table, which has no keys or NOT NULL (see the module).
                columns = (
                    "(person_id BIGINT, record_key SMALLINT) USING parquet"
                    if engine.kind == "spark"
                    else "(person_id BIGINT PRIMARY KEY, record_key SMALLINT NOT NULL)"
                )
                engine.execute(f"CREATE TABLE IF NOT EXISTS {table} {columns}")
        except WarehouseError:
            # Two workers creating it at the same moment can collide in PostgreSQL's catalog ("IF NOT EXISTS" is
            # not atomic there): the loser finds the winner's table and goes on; anything else is raised.
            if not _table_exists(engine, source.results_schema, source.key):
                raise
        _fill(engine, secret=secret, source=source, table=table)
    return table


def record_keys_fill(engine: Engine, *, source: Any) -> int:
    """Key the persons of the site's CDM that have no record key yet (after a reload of the CDM); returns how
    many were keyed."""
    return _fill(
        engine, secret=record_key_secret(source.key), source=source, table=record_keys_ensure(engine, source=source)
    )


def record_keys_rebuild(engine: Engine, *, source: Any) -> int:
    """Replace every key (after a change of the site's secret); returns the number of persons keyed."""
    table = record_keys_ensure(engine, source=source)
    if engine.kind == "spark":
        return _fill_spark(engine, secret=record_key_secret(source.key), source=source, table=table, replace=True)
    with engine.transaction():
        engine.execute(f"DELETE FROM {table}")  # noqa: S608 - quoted identifiers only
    return _fill(engine, secret=record_key_secret(source.key), source=source, table=table)


def _fill(engine: Engine, *, secret: bytes, source: Any, table: str) -> int:
    """Insert the keys of the persons missing from ``table``, computed here: the secret never reaches SQL.

    Two workers filling at once insert the same keys (a pure function of the person id): the loser's rows are
    skipped on conflict, never doubled.
    """
    if engine.kind == "spark":
        return _fill_spark(engine, secret=secret, source=source, table=table, replace=False)
    person = f"{quote_ident(source.cdm_schema)}.{quote_ident('person')}"
    # Quoted identifiers only; no value is spliced in.
    missing = engine.fetchall(
        f"SELECT p.person_id FROM {person} p WHERE NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {table} k WHERE k.person_id = p.person_id)"
    )
    if not missing:
        return 0
    staging = quote_ident("soyang_record_key_staging")
    descriptor, name = tempfile.mkstemp(prefix="record_keys_", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="ascii") as handle:
            writer = csv.writer(handle)
            writer.writerow(["person_id", "record_key"])
            writer.writerows((int(row[0]), record_key(secret, int(row[0]))) for row in missing)
        with engine.transaction():
            engine.execute(f"DROP TABLE IF EXISTS {staging}")
            engine.execute(f"CREATE TEMPORARY TABLE {staging} (person_id BIGINT, record_key SMALLINT)")
            engine.copy_from_csv(staging, path, ["person_id", "record_key"], header=True)
            engine.execute(
                f"INSERT INTO {table} (person_id, record_key) SELECT person_id, record_key FROM {staging} "  # noqa: S608
                "ON CONFLICT (person_id) DO NOTHING"
            )
            engine.execute(f"DROP TABLE {staging}")
    finally:
        path.unlink(missing_ok=True)
    return len(missing)


#: Persons per DataFrame sent to Spark when keys are written (an Arrow batch of about 2 MB).
SPARK_BATCH_PERSONS = 200_000
_SPARK_VIEW = "soyang_record_key_upload"


def _fill_spark(engine: Engine, *, secret: bytes, source: Any, table: str, replace: bool) -> int:
    """Spark: key the persons missing from ``table`` (``replace``: every person, overwriting the table).

    The keys are computed here, as on the other engines, and sent as DataFrames; each batch is one INSERT whose
    anti-join skips persons already in the table (a batch sent again after a failure adds nothing twice)."""
    person = f"{quote_ident(source.cdm_schema)}.{quote_ident('person')}"
    # Quoted identifiers only; no value is spliced in.
    if replace:
        ids = engine.fetchall(f"SELECT person_id FROM {person}")  # noqa: S608
    else:
        ids = engine.fetchall(
            f"SELECT p.person_id FROM {person} p LEFT ANTI JOIN {table} k ON k.person_id = p.person_id"  # noqa: S608
        )
    persons = sorted({int(row[0]) for row in ids})
    if not persons and not replace:
        return 0
    session = engine.session  # type: ignore[attr-defined]
    view = quote_ident(_SPARK_VIEW)
    try:
        for start in range(0, max(len(persons), 1), SPARK_BATCH_PERSONS):
            batch = persons[start : start + SPARK_BATCH_PERSONS]
            frame = session.createDataFrame(
                [(pid, record_key(secret, pid)) for pid in batch], schema="person_id BIGINT, record_key SMALLINT"
            )
            frame.createOrReplaceTempView(_SPARK_VIEW)
            if replace and start == 0:
                # The first batch replaces every key of the table; the following ones are appended to it.
                engine.execute(f"INSERT OVERWRITE TABLE {table} SELECT person_id, record_key FROM {view}")  # noqa: S608
            else:
                engine.execute(
                    f"INSERT INTO {table} SELECT u.person_id, u.record_key FROM {view} u "  # noqa: S608
                    f"LEFT ANTI JOIN {table} k ON k.person_id = u.person_id"
                )
    finally:
        engine.execute(f"DROP VIEW IF EXISTS {view}")
    return len(persons)
