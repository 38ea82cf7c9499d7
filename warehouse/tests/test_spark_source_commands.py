"""add_source, synthesize_omop, load_omop and list_sources on a Spark source, through call_command: the site
administrator's commands work for a Spark cluster as for PostgreSQL and DuckDB, and bad input (a token in the URL,
a URL that is not Spark Connect's, a server that does not answer, a broken export) is one clear error that
changes nothing.
"""

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

#: A port nothing listens on.
DOWN_URL = "sc://127.0.0.1:1"


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_add_source_refuses_a_spark_url_with_a_token_or_that_is_not_spark_connect() -> None:
    with pytest.raises(CommandError) as refused:
        _run("add_source", "lake", "--engine", "spark", "--url", "sc://cluster.local:443/;token=dapi123")
    assert "must not contain a token" in str(refused.value)
    assert "SOYANG_SOURCE_LAKE_PASSWORD" in str(refused.value) and "SOYANG_SPARK_TOKEN" in str(refused.value)
    assert "dapi123" not in str(refused.value)
    for url in ("https://cluster.local", "sc://cluster.local:443/path", "sc://cluster.local:99999"):
        with pytest.raises(CommandError, match="url: "):
            _run("add_source", "lake", "--engine", "spark", "--url", url)
    assert not Source.objects.exists()


def test_synthesize_load_and_list_a_spark_source(spark_url: str, make_mini_export: Callable[..., Path]) -> None:
    _run(
        "add_source", "lake", "--engine", "spark", "--url", spark_url,
        "--cdm-schema", "w_cmd_spark_cdm", "--results-schema", "w_cmd_spark_results",
    )  # fmt: skip
    out = _run("synthesize_omop", "--source", "lake", "--persons", "60", "--seed", "5", "--jobs", "1")
    assert "loaded person: 60 rows" in out
    source = Source.objects.get(key="lake")
    assert source.cdm_version == "5.4" and source.loaded_at is not None
    with connect("spark", spark_url) as engine:
        assert cdm_fingerprint(engine, source) == source.fingerprint  # as the site's worker reads it
        assert engine.fetchall("SHOW SCHEMAS LIKE 'w_cmd_spark_results'") == [("w_cmd_spark_results",)]

    # A broken export is refused naming the file, and leaves the warehouse and the source as they were.
    def break_row(folder: Path) -> None:
        with (folder / "person.csv").open("a", encoding="utf-8") as handle:
            handle.write("oops,8532,1963\n")

    with pytest.raises(CommandError, match=r"person\.csv"):
        _run("load_omop", str(make_mini_export(break_row)), "--source", "lake")
    after = Source.objects.get(key="lake")
    assert (after.fingerprint, after.loaded_at) == (source.fingerprint, source.loaded_at)

    listing = _run("list_sources")
    lake = next(line for line in listing.splitlines() if line.startswith("lake"))
    assert lake.split()[:4] == ["lake", "spark", "5.4", "60"]
    assert source.fingerprint in lake


def test_a_spark_server_that_does_not_answer_is_one_clear_error_and_nothing_changes(
    make_mini_export: Callable[..., Path],
) -> None:
    _run("add_source", "lake_down", "--engine", "spark", "--url", DOWN_URL)
    for command in (
        ("load_omop", str(make_mini_export()), "--source", "lake_down"),
        ("synthesize_omop", "--source", "lake_down", "--persons", "10"),
        ("attach_source", "lake_down"),
    ):
        with pytest.raises(CommandError) as refused:
            _run(*command)
        message = str(refused.value)
        assert message.startswith("cannot reach the warehouse of source lake_down: cannot connect to Spark at ")
        assert "\n" not in message
    source = Source.objects.get(key="lake_down")
    assert (source.fingerprint, source.cdm_version, source.loaded_at) == ("", "", None)
    listing = _run("list_sources")
    assert "unreachable" in next(line for line in listing.splitlines() if line.startswith("lake_down"))
