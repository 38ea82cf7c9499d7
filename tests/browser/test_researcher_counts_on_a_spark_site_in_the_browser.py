"""A researcher opens a definition and counts it on a Spark site from the page, in a real browser: the site's real
Celery worker runs the count on the session's Spark (GiBleed, Parquet tables) and the page shows the released
count, the oracle's persons perturbed with their cell key at this site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cohorts.runs.models import CohortRun
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import (
    make_running_project,
    make_source,
    make_user,
    oracle_definition,
    oracle_expected,
    oracle_released,
)

pytestmark = pytest.mark.django_db(transaction=True)

COHORT = "h04_gibleed_censored_by_acetaminophen"
TIMEOUT_MS = 30_000
#: A count on Spark runs a dozen statements of about a second each on the test's local Spark.
COUNT_TIMEOUT_MS = 180_000
#: Where the result page is kept for a person to look at (a fixed, well-known name; nothing reads it back).
SCREENSHOT = Path("/tmp/spark_browser_count.png")  # noqa: S108


def test_a_researcher_counts_a_definition_on_a_spark_site_from_its_page(
    live_server: Any, start_worker: Any, cdm_gibleed_spark: Any, oracle_dir: Path, chromium: Any
) -> None:
    assert oracle_expected(oracle_dir, COHORT)["persons"] >= 10  # shown as a number, not "<10"
    source = make_source(cdm_gibleed_spark, name="Spark hospital")
    expected = oracle_released(oracle_dir, COHORT, source)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher, sources=[source], title="Bleeding on Spark", approval_number="IRB-S1"
    )
    definition = oracle_definition(oracle_dir, COHORT, researcher)
    definition.project = project
    definition.save(update_fields=["project"])
    start_worker(site_queue(source.key))

    js_errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, js_errors, failed)
        sign_in(page, live_server.url, researcher.username)

        page.goto(f"{live_server.url}/cohorts/{definition.pk}/")
        page.get_by_role("heading", name=COHORT).wait_for()
        page.get_by_label(f"{source.name} ({source.key})").check()
        page.get_by_role("button", name="Count", exact=True).click()

        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for(timeout=COUNT_TIMEOUT_MS)
        site_row = page.locator("#sites tbody tr")
        row_state = site_row.locator("td").nth(1).inner_text()
        shown = site_row.locator("td").nth(3).inner_text()
        total = page.locator("#run [data-field=total]").inner_text()
        page.screenshot(path=SCREENSHOT, full_page=True)
        context.close()

    run = CohortRun.objects.get(source=source)
    assert run.result["engine"] == "spark", run.result
    assert row_state == "succeeded", run.error
    assert shown == total == f"{expected:,}"
    assert not js_errors, js_errors
    assert not failed, failed
