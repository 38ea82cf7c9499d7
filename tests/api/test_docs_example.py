"""The Python example of docs/api.md, read from the file and run as written: against a live portal (HTTP, token
authentication) and a real Celery worker of the site, it imports an ATLAS file, starts a count, polls it and
prints the number — the oracle's number for that cohort on GiBleed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from accounts.api.tokens import token_create
from accounts.choices import Role
from cohorts.runs.services import site_queue
from worker.tests.helpers import make_running_project, make_source, make_user, oracle_released

pytestmark = pytest.mark.django_db(transaction=True)
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
COHORT = "h04_gibleed_censored_by_acetaminophen"


def _example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/api.md should hold exactly one Python example"
    return blocks[0]


def test_the_documented_example_imports_counts_and_prints_the_oracle_count(
    live_server, start_worker, cdm_gibleed_pg, oracle_dir: Path, monkeypatch, capsys
) -> None:
    source = make_source(cdm_gibleed_pg)
    admin = make_user(role=Role.ADMIN)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=[source],
        title="GI bleed",
        purpose="docs example",
        created_by=admin,
    )
    start_worker(site_queue(source.key))
    monkeypatch.setenv("SOYANG_URL", live_server.url)
    monkeypatch.setenv("SOYANG_TOKEN", token_create(user=researcher, name="docs example", days=1).secret)

    namespace: dict[str, object] = {"__name__": "soyang_count"}
    exec(compile(_example_code(), str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation's code)
    run = namespace["main"](str(oracle_dir / "cohorts" / f"{COHORT}.json"), source.key, project.pk)

    # The count the portal releases: the oracle's persons, perturbed with their cell key at this site.
    expected = oracle_released(oracle_dir, COHORT, source)
    truth = json.loads((oracle_dir / "expected" / f"{COHORT}.json").read_text())["persons"]
    assert run["total"]["value"] == expected and abs(expected - truth) <= 3
    assert f": {expected} persons (perturbed (at most ±3), counts under 10 hidden)" in capsys.readouterr().out
