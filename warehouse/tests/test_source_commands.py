"""add_source, load_omop and list_sources end to end, on both engines, through call_command."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from warehouse.engines import connect
from warehouse.fingerprint import cdm_fingerprint
from warehouse.models import Source

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_add_source_refuses_a_password_in_the_url_and_names_the_variable() -> None:
    with pytest.raises(CommandError, match="SOYANG_SOURCE_SITE_A_PASSWORD"):
        _run("add_source", "site_a", "--engine", "postgresql", "--url", "postgresql://reader:s3cret@db.local/cdm")
    assert not Source.objects.exists()


def test_add_source_refuses_bad_keys_and_schemas() -> None:
    with pytest.raises(CommandError, match="key"):
        _run("add_source", "Site-A", "--engine", "duckdb", "--url", "duckdb:////tmp/x.duckdb")
    with pytest.raises(CommandError, match="results schema must differ"):
        _run(
            "add_source", "site_a", "--engine", "duckdb", "--url", "duckdb:////tmp/x.duckdb", "--results-schema", "cdm"
        )
    assert not Source.objects.exists()


def test_add_load_and_list_a_source(warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]) -> None:
    kind, url = warehouse_url
    _run(
        "add_source",
        "site_a",
        "--engine",
        kind,
        "--url",
        url,
        "--name",
        "Site A",
        "--cdm-schema",
        "w_cmd_cdm",
        "--results-schema",
        "w_cmd_results",
    )
    source = Source.objects.get(key="site_a")
    assert (source.name, source.vocabulary_schema, source.cdm_version) == ("Site A", "w_cmd_cdm", "")

    output = _run("load_omop", str(make_mini_export()), "--source", "site_a", "--cdm-version", "5.3")
    assert "person" in output and "40" in output and "loaded" in output and " s;" in output
    source.refresh_from_db()
    assert source.cdm_version == "5.3" and source.loaded_at is not None
    with connect(kind, url) as engine:
        assert cdm_fingerprint(engine, source) == source.fingerprint  # the data loaded, as the workers read it
        assert engine.fetchone(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'w_cmd_results'"
        ) == (1,)

    Source.objects.create(key="site_down", name="Down", engine="postgresql", url="postgresql://postgres@127.0.0.1:1/x")
    listing = _run("list_sources")
    site_a = next(line for line in listing.splitlines() if line.startswith("site_a"))
    assert site_a.split()[:4] == ["site_a", kind, "5.3", "40"]
    assert source.fingerprint in site_a
    assert "unreachable" in next(line for line in listing.splitlines() if line.startswith("site_down"))


def test_load_omop_errors_are_command_errors_and_change_nothing(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url
    _run("add_source", "site_b", "--engine", kind, "--url", url, "--cdm-schema", "w_cmd_cdm_b")
    _run("load_omop", str(make_mini_export()), "--source", "site_b")
    before = Source.objects.get(key="site_b")

    def break_row(folder: Path) -> None:
        with (folder / "person.csv").open("a", encoding="utf-8") as handle:
            handle.write("oops,8532,1963\n")

    with pytest.raises(CommandError, match=r"person\.csv, line 42"):
        _run("load_omop", str(make_mini_export(break_row)), "--source", "site_b")
    with pytest.raises(CommandError, match="unknown CDM version"):
        _run("load_omop", str(make_mini_export()), "--source", "site_b", "--cdm-version", "5.2")
    with pytest.raises(CommandError, match="no source"):
        _run("load_omop", str(make_mini_export()), "--source", "nobody")
    after = Source.objects.get(key="site_b")
    assert (after.fingerprint, after.loaded_at) == (before.fingerprint, before.loaded_at)
    with connect(kind, url) as engine:
        assert cdm_fingerprint(engine, before) == before.fingerprint


def test_load_omop_into_an_unreachable_database_says_so(make_mini_export: Callable[..., Path]) -> None:
    Source.objects.create(key="site_down", name="Down", engine="postgresql", url="postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(CommandError, match="cannot reach the warehouse of source site_down"):
        _run("load_omop", str(make_mini_export()), "--source", "site_down")
