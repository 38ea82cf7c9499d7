"""A researcher compares three cohorts in Chromium: ticks them on the definitions list (one alone is refused with
a clear message), presses "Compare the selected", chooses two sites (GiBleed in PostgreSQL and in DuckDB, a real
worker answering both), and gets the UpSet-style chart and the table — merged, then one site — with exactly the
numbers the selector protected; then the same page in Korean. Screenshots at 1400 px in var/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cohorts.runs.comparison_selectors import comparison_result
from cohorts.runs.models import Comparison
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import make_running_project, make_source, make_user, oracle_definition

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["h01_celecoxib_new_users_custom_era", "h04_gibleed_censored_by_acetaminophen", "pl_22168"]
LABELS = ["Celecoxib new users", "GI bleed after acetaminophen", "Phenotype 22168"]
TIMEOUT_MS = 60_000


def _table(page: Any) -> list[list[str]]:
    return [row.locator("td").all_inner_texts() for row in page.locator("#overlap-table tbody tr").all()]


def test_three_cohorts_compared_on_two_sites_in_english_and_korean(
    live_server: Any,
    start_worker: Any,
    cdm_gibleed_pg: Any,
    cdm_gibleed_duckdb_private: Any,
    oracle_dir: Path,
    chromium: Any,
    screenshots: Path,
) -> None:
    sources = sorted([make_source(cdm_gibleed_pg), make_source(cdm_gibleed_duckdb_private)], key=lambda s: s.key)
    researcher = make_user()
    project = make_running_project(investigator=researcher, sources=sources, title="Bleeding and analgesics")
    for name, label in zip(NAMES, LABELS, strict=True):
        definition = oracle_definition(oracle_dir, name, researcher)
        definition.name, definition.project = label, project
        definition.save(update_fields=["name", "project"])
    start_worker(",".join(site_queue(s.key) for s in sources))
    one_site = next(s for s in sources if s.engine == "duckdb")

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)

        # One definition alone: the list says what is needed, and stays.
        page.goto(f"{live_server.url}/cohorts/")
        list_url = page.url
        page.get_by_label(f"Select {LABELS[0]}").check()
        page.get_by_role("button", name="Compare the selected").click()
        page.locator("#compare-message").wait_for()
        refusal = page.locator("#compare-message").inner_text()
        still_on_list = page.url == list_url
        page.screenshot(path=screenshots / "comparison-0-one-chosen.png", full_page=True)

        for label in LABELS[1:]:
            page.get_by_label(f"Select {label}").check()
        page.get_by_role("button", name="Compare the selected").click()
        letters = page.locator("#comparison-definitions li").all_inner_texts()
        for source in sources:
            page.get_by_label(f"{source.name} ({source.key})").check()
        page.screenshot(path=screenshots / "comparison-1-choose-sites.png", full_page=True)
        page.get_by_role("button", name="Compare", exact=True).click()

        page.locator("#comparison [data-field=state]").filter(has_text="finished").wait_for()
        page.locator("#overlap-chart svg.main-svg").first.wait_for()
        page.locator("#overlap-table").wait_for()
        detail_url = page.url
        options = [(o.get_attribute("value"), o.inner_text()) for o in page.locator("#overlap-view option").all()]
        merged_rows = _table(page)
        bars = page.locator("#overlap-chart .bars .point").count()
        page.screenshot(path=screenshots / "comparison-2-merged.png", full_page=True)

        page.locator("#overlap-view").select_option(value=f"site-{one_site.key}")
        page.locator("[data-field=overlap-rule]").filter(has_text="perturbed").wait_for()
        site_rows = _table(page)
        page.screenshot(path=screenshots / "comparison-3-one-site.png", full_page=True)
        csv_href = page.locator("#overlap-csv").get_attribute("href")

        page.locator("#language-choice").select_option("ko")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_load_state()
        page.locator("html[lang=ko]").wait_for(state="attached")
        page.locator("#overlap-table").wait_for()
        korean_heading = page.locator("h1").inner_text()
        korean_options = page.locator("#overlap-view option").all_inner_texts()
        korean_header = page.locator("#overlap-table thead th").all_inner_texts()
        korean_rows = _table(page)
        page.screenshot(path=screenshots / "comparison-4-korean.png", full_page=True)

        page.goto(f"{live_server.url}/cohorts/comparisons/")
        korean_list_heading = page.locator("h1").inner_text()
        listed = page.locator("#comparisons tbody tr a").get_attribute("href")
        page.screenshot(path=screenshots / "comparison-5-korean-list.png", full_page=True)
        context.close()

    assert not errors, errors
    assert not failed, failed
    assert refusal == "Choose 2 to 4 definitions to compare (you chose 1)." and still_on_list
    assert [text.split(" ", 1)[0] for text in letters] == ["A", "B", "C"]
    comparison = Comparison.objects.get(requested_by=researcher)
    assert detail_url.rstrip("/").endswith(f"/cohorts/comparisons/{comparison.pk}")
    result = comparison_result(comparison=comparison, role=researcher.role)
    assert result["finished"] and result["sites_answered"] == 2

    assert options == [("merged", "All sites (merged)")] + [(f"site-{s.key}", f"{s.name} ({s.key})") for s in sources]
    assert bars >= 7  # a bar per combination, and the cohorts' totals

    def expected(block: dict[str, Any]) -> list[list[str]]:
        rows = []
        for i, cohort in enumerate(result["cohorts"]):
            marks = ["●" if j == i else "○" for j in range(3)]
            rows.append([f"{cohort['letter']} total: {cohort['name']}", *marks, block["cohorts"][i]["display"], ""])
        union = block["union"]
        rows.append(["Union (in any cohort)", "●", "●", "●", union["display"], "" if union["hidden"] else "100.0%"])
        for combination, cell in zip(result["combinations"], block["combinations"], strict=True):
            marks = ["●" if j in combination["members"] else "○" for j in range(3)]
            share = "" if cell["percent"] is None else f"{cell['percent']:.1f}%"
            rows.append([f"{combination['label']} only", *marks, cell["display"], share])
        return rows

    assert merged_rows == expected(result["merged"]), merged_rows
    site = next(s for s in result["sites"] if s["source"] == one_site.key)
    assert site_rows == expected(site), site_rows
    assert csv_href.endswith(f"/cohorts/comparisons/{comparison.pk}/overlap.csv")

    assert korean_heading == "코호트 비교 결과"
    assert korean_list_heading == "내 비교" and listed.rstrip("/").endswith(f"/comparisons/{comparison.pk}")
    assert korean_options[0] == "전체 기관(합산)" or korean_options[0] == "모든 기관 (합산)"
    assert korean_header[0] == "조합" and korean_header[-1] == "합집합 대비 %"
    assert korean_rows[3][0] == "합집합(어느 코호트에든 속함)"
    assert korean_rows[4][0].endswith("에만 속함")
