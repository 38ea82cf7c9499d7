"""A researcher counts an imported ATLAS cohort in a real browser: sign in, import the JSON, press Count, and
see the site's number drawn by run.js while the site's real Celery worker runs the count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.definitions.models import CohortDefinition
from cohorts.runs.services import site_queue
from worker.tests.helpers import (
    PASSWORD,
    make_running_project,
    make_source,
    make_user,
    oracle_expected,
    oracle_released,
)

pytestmark = pytest.mark.django_db(transaction=True)

COHORT = "h04_gibleed_censored_by_acetaminophen"
TIMEOUT_MS = 30_000


def test_a_researcher_imports_a_cohort_and_counts_it_on_the_site(
    live_server: Any,
    start_worker: Any,
    cdm_gibleed_duckdb_private: Any,
    oracle_dir: Path,
    chromium: Any,
    screenshots: Path,
) -> None:
    assert oracle_expected(oracle_dir, COHORT)["persons"] >= 10  # shown as a number, not "<10"
    source = make_source(cdm_gibleed_duckdb_private)
    # The oracle's persons, perturbed with their cell key at this site: what the page must show.
    expected = oracle_released(oracle_dir, COHORT, source)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=[source],
        title="Bleeding after acetaminophen",
        purpose="browser test",
        approval_number="IRB-B1",
    )
    start_worker(site_queue(source.key))
    atlas_json = (oracle_dir / "cohorts" / f"{COHORT}.json").read_text()
    json.loads(atlas_json)  # the fixture itself is valid JSON

    js_errors: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: js_errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: js_errors.append(f"{page.url}: uncaught {e}"))

        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("User name or e-mail").fill(researcher.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.screenshot(path=screenshots / "1-login.png", full_page=True)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()

        page.get_by_role("link", name="Cohorts", exact=True).first.click()
        page.get_by_role("link", name="Import ATLAS JSON").click()
        page.get_by_label("Name").fill("GI bleed censored by acetaminophen")
        page.get_by_label("Project").select_option(value=str(project.pk))
        page.get_by_label("…or paste the JSON").fill(atlas_json)
        page.get_by_role("button", name="Check and import").click()

        page.get_by_role("heading", name="GI bleed censored by acetaminophen").wait_for()
        definition_url = page.url
        page.get_by_label(f"{source.name} ({source.key})").check()
        page.screenshot(path=screenshots / "2-definition.png", full_page=True)
        page.get_by_role("button", name="Count", exact=True).click()

        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for()
        site_row = page.locator("#sites tbody tr")
        persons = site_row.locator("td").nth(3)
        total = page.locator("#run [data-field=total]").inner_text()
        answered = page.locator("#run [data-field=sites-answered]").inner_text()
        row_state = site_row.locator("td").nth(1).inner_text()
        shown = persons.inner_text()
        page.screenshot(path=screenshots / "3-result.png", full_page=True)
        result_url = page.url
        context.close()

    assert "/cohorts/runs/" in result_url, result_url
    assert row_state == "succeeded"
    assert shown == f"{expected:,}"
    assert total == f"{expected:,}"
    assert answered == "1 of 1 site(s) answered"
    assert not js_errors, js_errors
    assert not failed, failed
    definition = CohortDefinition.objects.get(owner=researcher)
    assert definition_url.rstrip("/").endswith(f"/cohorts/{definition.pk}")
    assert definition.project == project
