"""A CDM Soyang did not load is attached: checked, versioned, fingerprinted and reported on, under a role that
reads the CDM and writes only the results schema; a CDM lacking what counting reads is refused, recording nothing.

The CDMs here are made by plain SQL from the GiBleed CSVs (``plain_cdm``), as a hospital's ETL leaves them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from warehouse.engines import connect
from warehouse.models import Source
from warehouse.tests.plain_cdm import PlainCdm, plain_duckdb_cdm, plain_postgres_cdm

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["postgresql", "duckdb"])
def plain_cdm(request: pytest.FixtureRequest, shared_data_dir: Path, tmp_path: Path) -> Iterator[PlainCdm]:
    data = shared_data_dir / "omop" / "gibleed"
    if request.param == "duckdb":
        yield plain_duckdb_cdm(tmp_path / "hospital.duckdb", data)
        return
    with plain_postgres_cdm(request.getfixturevalue("test_cdm_pg_url"), data) as cdm:
        yield cdm


def _add(cdm: PlainCdm, key: str, *, attach: bool = True) -> str:
    out = StringIO()
    call_command(
        "add_source",
        key,
        "--engine",
        cdm.kind,
        "--url",
        cdm.url,
        "--cdm-schema",
        cdm.cdm_schema,
        "--results-schema",
        cdm.results_schema,
        *(["--attach"] if attach else []),
        stdout=out,
    )
    return out.getvalue()


def _cdm_objects(cdm: PlainCdm) -> list[tuple]:
    """Every table and index of the CDM schema (Soyang must add none)."""
    with connect(cdm.kind, cdm.owner_url) as engine:
        if cdm.kind == "postgresql":
            return engine.fetchall(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %(s)s ORDER BY 1",
                {"s": cdm.cdm_schema},
            )
        return engine.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %(s)s "
            "UNION ALL SELECT index_name FROM duckdb_indexes() WHERE schema_name = %(s)s ORDER BY 1",
            {"s": cdm.cdm_schema},
        )


def test_attaching_a_plain_cdm_records_version_and_fingerprint_and_reports_what_it_lacks(plain_cdm: PlainCdm) -> None:
    before = _cdm_objects(plain_cdm)

    out = _add(plain_cdm, "hospital")

    source = Source.objects.get(key="hospital")
    assert source.cdm_version == "5.3"
    assert re.fullmatch(r"[0-9a-f]{64}", source.fingerprint)
    assert source.attached_at is not None and source.fingerprint_checked_at is not None
    assert "CDM version: 5.3" in out
    assert "cdm_source_name Synthea synthetic health database" in out
    assert "vocabulary_version v5.0 18-JAN-19" in out
    # What the hospital's schema lacks of Soyang's physical design, with its cost and the DBA's statement.
    assert "concept_ancestor (descendant_concept_id, ancestor_concept_id): resolving concept sets" in out
    assert f'CREATE INDEX "ix_concept_ancestor_descendant_4" ON "{plain_cdm.cdm_schema}"."concept_ancestor"' in out
    if plain_cdm.kind == "postgresql":
        assert "drug_exposure (drug_concept_id, person_id, drug_exposure_start_date): a criterion on" in out
        assert 'INCLUDE ("drug_exposure_id", "drug_exposure_end_date", "days_supply"' in out
        assert "person has never been analyzed" in out
        assert f'VACUUM (ANALYZE) "{plain_cdm.cdm_schema}"."person";' in out
    else:
        assert f'CREATE OR REPLACE TABLE "{plain_cdm.cdm_schema}"."drug_exposure"' in out
    assert "attached source hospital (CDM 5.3)" in out
    event = AuditEvent.objects.get(action="source.attached")
    assert event.detail["fingerprint"] == source.fingerprint
    # Soyang wrote nothing to the CDM schema (the DDL is only printed) and left no probe in the results schema.
    assert _cdm_objects(plain_cdm) == before
    with connect(plain_cdm.kind, plain_cdm.owner_url) as engine:
        assert (
            engine.fetchall(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %(s)s",
                {"s": plain_cdm.results_schema},
            )
            == []
        )


def test_an_index_counts_by_the_columns_it_covers_not_by_its_name(plain_cdm: PlainCdm) -> None:
    plain_cdm.etl(
        f"CREATE INDEX hospital_own_name ON {plain_cdm.cdm_schema}.concept_ancestor "
        "(descendant_concept_id, ancestor_concept_id, min_levels_of_separation)"
    )

    out = _add(plain_cdm, "hospital")

    assert "concept_ancestor (descendant_concept_id, ancestor_concept_id)" not in out
    assert "concept_ancestor (ancestor_concept_id, descendant_concept_id)" in out


def test_a_missing_table_or_column_is_refused_with_one_message_each_and_nothing_recorded(
    test_cdm_pg_url: str, shared_data_dir: Path
) -> None:
    data = shared_data_dir / "omop" / "gibleed"
    tables = [t for t in ("person", "observation_period", "drug_exposure", "concept", "concept_ancestor")]
    with plain_postgres_cdm(
        test_cdm_pg_url, data, tables=[*tables, "concept_relationship"], drop_columns=["drug_exposure.refills"]
    ) as cdm:
        with pytest.raises(CommandError) as refused:
            _add(cdm, "hospital")
        message = str(refused.value)
        assert f"column {cdm.cdm_schema}.drug_exposure.refills is missing" in message
        assert f"table {cdm.cdm_schema}.condition_occurrence is missing" in message
        assert f"table {cdm.cdm_schema}.visit_occurrence is missing" in message
        assert message.count(" is missing") == 17  # 16 absent tables and one column
        assert not Source.objects.filter(key="hospital").exists()  # --attach: not even registered

        _add(cdm, "hospital", attach=False)
        with pytest.raises(CommandError, match="drug_exposure.refills is missing"):
            call_command("attach_source", "hospital", stdout=StringIO())
        source = Source.objects.get(key="hospital")
        assert (source.fingerprint, source.cdm_version, source.attached_at) == ("", "", None)
        assert not AuditEvent.objects.filter(action="source.attached").exists()


def test_a_results_schema_the_role_cannot_write_is_refused_clearly(test_cdm_pg_url: str, shared_data_dir: Path) -> None:
    with plain_postgres_cdm(test_cdm_pg_url, shared_data_dir / "omop" / "gibleed") as cdm:
        cdm.etl(f"REVOKE CREATE ON SCHEMA {cdm.results_schema} FROM {cdm.role}")
        with pytest.raises(CommandError) as refused:
            _add(cdm, "hospital")
        assert f"Soyang cannot create a table in schema {cdm.results_schema}: permission denied" in str(refused.value)
        assert f"GRANT USAGE, CREATE ON SCHEMA {cdm.results_schema} TO <role>" in str(refused.value)
        assert not Source.objects.filter(key="hospital").exists()


def test_attaching_an_unknown_source_says_so() -> None:
    with pytest.raises(CommandError, match="no source with key 'nowhere'"):
        call_command("attach_source", "nowhere")
