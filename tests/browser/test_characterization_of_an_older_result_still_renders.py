"""A characterization stored before the sites computed the population (top concepts of the 30 days before index,
no procedures, no population) still renders in Chromium at 1400 px, in English and in Korean: its titles say the
window it was computed with, its percentages of the cohort are shown, the population's columns read "—", the page
says how to get the comparison, and nothing fails in the console.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.tests.factories import SourceFactory
from cohorts.definitions.services import definition_create
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import demographics_request, raw_demographics
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import make_running_project, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
DIABETES = 201826


def test_an_older_characterization_renders_with_what_it_has(live_server: Any, chromium: Any, screenshots: Path) -> None:
    researcher = make_user()
    source = SourceFactory(key="oldsite", fingerprint="f" * 64)
    project = make_running_project(investigator=researcher, sources=[source], title="Older results")
    definition = definition_create(owner=researcher, name="Stored long ago", expression=EXPRESSION, project=project)
    # As a worker stored it before the characterization: 30 days, no procedures, no population.
    request = demographics_request(
        definition.latest_version(), researcher, {source: raw_demographics(40, top={DIABETES: 20})}
    )
    url = f"{live_server.url}/cohorts/runs/{request.pk}/"

    errors: list[str] = []
    failed: list[str] = []
    seen: dict[str, Any] = {}
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        page.goto(url)
        page.locator("#pyramid-chart svg.main-svg").first.wait_for()
        for language in ("en", "ko"):
            if language == "ko":
                page.locator("#language-choice").select_option("ko")
                page.get_by_role("button", name="Change language").click()
                page.wait_for_load_state()
                page.locator("html[lang=ko]").wait_for(state="attached")
                page.locator("#pyramid-chart svg.main-svg").first.wait_for()
            seen[language] = {
                "title": page.locator("[data-field=window-title]").first.inner_text(),
                "window": page.locator("[data-field=window]").first.inner_text(),
                "population": page.locator("[data-field=population]").inner_text(),
                "conditions": [
                    row.locator("td").all_inner_texts()
                    for row in page.locator("[data-table=top_conditions] tbody tr").all()
                ],
                "procedures": page.locator("[data-table=top_procedures] tbody tr").all_inner_texts(),
                "women": page.locator("[data-table=gender] tbody tr").nth(1).locator("td").all_inner_texts(),
            }
            page.screenshot(path=screenshots / f"characterization-older-{language}.png", full_page=True)
        context.close()

    assert not errors, errors
    assert not failed, failed
    english, korean = seen["en"], seen["ko"]
    assert english["title"] == "most frequent in the 30 days before index"
    assert "in the 30 days up to and including their index date" in english["window"]
    assert english["population"].startswith("This result was computed before the sites described their population")
    # 20 of 40 persons: 50.0% of the cohort; no population to compare with.
    assert english["conditions"] == [[str(DIABETES), f"condition {DIABETES}", "20", "50.0%", "—", "—"]]
    assert english["procedures"] == ["Nothing to show."]
    assert english["women"] == ["Female", "40", "100.0%", "—", "—"]
    assert korean["title"] == "기준일 전 30일 동안 가장 흔한 항목"
    assert korean["population"].startswith("이 결과는 기관이 전체 인구를 기술하기 전에 계산되었습니다")
    assert korean["conditions"] == english["conditions"]
    assert korean["women"] == ["여성", "40", "100.0%", "—", "—"]
