"""`synthesize_omop --source KEY` generates and loads a warehouse a new user can count on at once."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from warehouse.models import Source
from warehouse.selectors import source_row_counts
from warehouse.services import source_create


@pytest.fixture(params=["duckdb", "postgresql"])
def synth_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "duckdb":
        return "duckdb", f"duckdb:///{tmp_path / 'site.duckdb'}"
    return "postgresql", request.getfixturevalue("test_cdm_pg_url")


@pytest.mark.django_db
def test_synthesize_command_loads_the_source_and_records_its_fingerprint(synth_url: tuple[str, str]) -> None:
    engine, url = synth_url
    source = source_create(key="synth", engine=engine, url=url, cdm_schema="synth_cdm", results_schema="synth_results")
    out = StringIO()
    call_command("synthesize_omop", source="synth", persons=300, seed=11, jobs=1, stdout=out)
    source = Source.objects.get(pk=source.pk)
    assert source.cdm_version == "5.4"
    assert len(source.fingerprint) >= 16
    assert source.loaded_at is not None
    counts = source_row_counts(source=source)
    assert counts["person"] == 300
    assert counts["observation_period"] >= 300
    assert "loaded person: 300 rows" in out.getvalue()
    assert f"fingerprint {source.fingerprint[:12]}" in out.getvalue()
