"""``manage.py run_cohort``: end to end on the DuckDB GiBleed CDM of the root conftest."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from cohorts.management.commands.run_cohort import command_cohort_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def gibleed_source(cdm_gibleed_duckdb: Any) -> Any:
    from warehouse.models import Source

    cdm = cdm_gibleed_duckdb
    return Source.objects.create(
        key="gibleed-duckdb",
        name="GiBleed (DuckDB)",
        engine="duckdb",
        url=cdm.url,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
    )


def run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("run_cohort", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_run_cohort_writes_the_rows_and_prints_the_aggregates(
    gibleed_source: Any, oracle_dir: Path, tmp_path: Path
) -> None:
    definition = oracle_dir / "cohorts" / "pl_12401.json"
    expected = json.loads((oracle_dir / "expected" / "pl_12401.json").read_text())
    rows_file = tmp_path / "rows.csv"

    summary = run(str(definition), "--source", gibleed_source.key, "--rows", str(rows_file))

    assert rows_file.read_text() == (oracle_dir / "expected" / "pl_12401.csv").read_text()
    assert (summary["persons"], summary["rows"]) == (expected["persons"], expected["rows"])
    assert isinstance(summary["seconds"], float)
    by_person = expected["by_person"]
    assert summary["inclusion_rules"] == [
        {"name": r["name"], "persons": r["count"]} for r in by_person["inclusion_rules"]
    ]
    assert summary["attrition"] == [{"name": r["name"], "persons": r["count"]} for r in by_person["attrition"]]


def test_an_invalid_definition_fails_with_its_message_and_writes_nothing(
    gibleed_source: Any, oracle_dir: Path, tmp_path: Path
) -> None:
    expression = json.loads((oracle_dir / "cohorts" / "pl_12401.json").read_text())
    expression["InclusionRules"][1]["expression"]["Type"] = "MOST"
    definition = tmp_path / "bad.json"
    definition.write_text(json.dumps(expression))
    rows_file = tmp_path / "rows.csv"

    with pytest.raises(CommandError, match=r"InclusionRules\[1\]\.expression\.Type: expected one of"):
        call_command("run_cohort", str(definition), "--source", gibleed_source.key, "--rows", str(rows_file))

    assert not rows_file.exists()


def test_an_unknown_source_is_an_error(oracle_dir: Path) -> None:
    with pytest.raises(CommandError, match="no source with key 'nowhere'"):
        call_command("run_cohort", str(oracle_dir / "cohorts" / "s03_deaths.json"), "--source", "nowhere")


def test_the_command_cohort_id_is_stable_and_apart_from_run_ids() -> None:
    expression = {"PrimaryCriteria": {"CriteriaList": []}, "ConceptSets": []}
    assert command_cohort_id(expression) == command_cohort_id(dict(reversed(list(expression.items()))))
    assert 1_000_000_000 <= command_cohort_id(expression) < 2_000_000_000
