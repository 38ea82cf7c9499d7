"""A CDM in a Spark catalog that Soyang did not load is attached from the catalog alone (``SHOW TABLE EXTENDED``):
versioned, fingerprinted, reported on (no indexes to propose; the tables without statistics and the ANALYZE
statements a DBA could run); one lacking what counting reads, or a schema that does not exist, is refused and
nothing is recorded, in the portal or in Spark.
"""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from warehouse.engines import connect
from warehouse.fingerprint import cdm_fingerprint
from warehouse.models import Source
from warehouse.tests.plain_spark_cdm import plain_spark_cdm

pytestmark = pytest.mark.django_db

CDM = "w_attach_spark_cdm"
VOCABULARY = "w_attach_spark_vocab"
RESULTS = "w_attach_spark_results"


@pytest.fixture(scope="module")
def spark_plain_cdm(spark_url: str, shared_data_dir: Path) -> str:
    """The plain CDM in schema ``CDM``, and a vocabulary schema holding only a concept table without a column."""
    plain_spark_cdm(spark_url, shared_data_dir / "omop" / "gibleed", CDM)
    with connect("spark", spark_url) as engine:
        engine.execute(f"DROP SCHEMA IF EXISTS {VOCABULARY} CASCADE")
        engine.execute(f"DROP SCHEMA IF EXISTS {RESULTS} CASCADE")
        engine.execute(f"CREATE SCHEMA {VOCABULARY}")
        engine.execute(f"CREATE TABLE {VOCABULARY}.concept (concept_id INT, concept_name STRING) USING parquet")
    return spark_url


def _add(url: str, key: str, *extra: str) -> str:
    out = StringIO()
    call_command(
        "add_source", key, "--engine", "spark", "--url", url, "--results-schema", RESULTS, *extra, "--attach",
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


def _catalog(url: str) -> tuple[list[tuple], list[tuple]]:
    """The CDM schema's tables, and the schemas named like the results schema."""
    with connect("spark", url) as engine:
        return engine.fetchall(f"SHOW TABLES IN {CDM}"), engine.fetchall(f"SHOW SCHEMAS LIKE '{RESULTS}'")


def test_attaching_a_plain_spark_cdm_reads_the_catalog_and_reports_tables_without_statistics(
    spark_plain_cdm: str,
) -> None:
    before = _catalog(spark_plain_cdm)

    out = _add(spark_plain_cdm, "lakehouse", "--cdm-schema", CDM)

    source = Source.objects.get(key="lakehouse")
    assert (source.engine, source.cdm_version) == ("spark", "5.3")
    assert re.fullmatch(r"[0-9a-f]{64}", source.fingerprint) and source.attached_at is not None
    assert "CDM version: 5.3" in out
    assert "cdm_source_name Synthea synthetic health database" in out
    assert "Indexes: Spark has none, so there are none to propose" in out
    assert "CREATE INDEX" not in out and "VACUUM" not in out
    assert re.search(r"Tables without statistics \(\d+: person, observation_period, ", out)
    assert f"ANALYZE TABLE `{CDM}`.`person` COMPUTE STATISTICS;" in out
    assert "attached source lakehouse (CDM 5.3)" in out
    assert AuditEvent.objects.get(action="source.attached").detail["fingerprint"] == source.fingerprint
    # Nothing written to the CDM schema; the results schema the probe created is gone again, with its probe.
    assert _catalog(spark_plain_cdm) == before
    assert before[1] == []


def test_a_spark_cdm_lacking_tables_or_columns_or_a_schema_is_refused_and_nothing_recorded(
    spark_plain_cdm: str,
) -> None:
    with pytest.raises(CommandError) as refused:
        _add(spark_plain_cdm, "lakehouse", "--cdm-schema", CDM, "--vocabulary-schema", VOCABULARY)
    message = str(refused.value)
    assert f"column {VOCABULARY}.concept.domain_id is missing" in message
    assert f"table {VOCABULARY}.concept_ancestor is missing" in message

    with pytest.raises(CommandError) as refused:
        _add(spark_plain_cdm, "lakehouse", "--cdm-schema", "w_no_such_schema")
    assert str(refused.value).splitlines()[:2] == [
        "Cannot attach:",
        "  - schema w_no_such_schema does not exist in the Spark catalog (or the token may not see it): check "
        "--cdm-schema and --vocabulary-schema",
    ]
    assert not Source.objects.exists()
    assert not AuditEvent.objects.filter(action="source.attached").exists()
    assert _catalog(spark_plain_cdm)[1] == []


def test_the_fingerprint_of_a_spark_cdm_follows_its_etl_and_nothing_else(spark_plain_cdm: str) -> None:
    schemas = Source(cdm_schema=CDM, vocabulary_schema=CDM)
    with connect("spark", spark_plain_cdm) as engine:
        before = cdm_fingerprint(engine, schemas)
        assert cdm_fingerprint(engine, schemas) == before  # reading it changes nothing
        engine.execute(f"INSERT INTO {CDM}.death (person_id, death_date) VALUES (1, DATE'2020-01-01')")
        after = cdm_fingerprint(engine, schemas)
    assert after != before
