"""The demographics of a request on two sites, in Chromium: the run page's "Show" selector offers the sites'
merged numbers and each site alone, the tables show exactly what ``cohorts.runs.selectors`` protected (a hidden cell
as its text, never a number worked out from the others), and the selector reads in Korean once the language is
switched, so the page's script text really goes through Django's JavaScript catalogue.

The request is asked on the definition page (its site boxes and its Demographics button) while a real Celery
worker answers for both sites: GiBleed in PostgreSQL and GiBleed in DuckDB.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cohorts.definitions.services import definition_create
from cohorts.runs.choices import RunKind
from cohorts.runs.models import RunRequest
from cohorts.runs.selectors import run_request_result
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

COHORT = "h04_gibleed_censored_by_acetaminophen"
TIMEOUT_MS = 45_000
#: The demographic tables of the page and the columns run.js shows between "Site" and "Persons".
TABLES = {
    "age_pyramid": ("age_group", "gender"),
    "gender": ("name",),
    "race": ("name",),
    "ethnicity": ("name",),
    "index_year": ("year",),
}
A_NUMBER = re.compile(r"^[0-9][0-9,]*$")


def shown_tables(page: Any) -> dict[str, list[list[str]]]:
    """Each demographic table of the page as rows of cell texts, without the privacy column."""
    return {
        key: [
            cells[:-1]
            for cells in (
                row.locator("td").all_inner_texts() for row in page.locator(f"[data-table={key}] tbody tr").all()
            )
            if len(cells) > 1  # not the "Nothing to show." row
        ]
        for key in TABLES
    }


def expected_tables(site_column: str, demographics: dict[str, Any]) -> dict[str, list[list[str]]]:
    """What the page must show for one view, read from the selector's result: the site, the bucket, and the
    bucket's protected display, in the selector's order."""
    return {
        key: [
            [site_column, *("" if cell.get(c) is None else str(cell[c]) for c in columns), cell["persons"]["display"]]
            for cell in demographics.get(key, [])
        ]
        for key, columns in TABLES.items()
    }


def hidden_cells(shown: dict[str, list[list[str]]], demographics: dict[str, Any]) -> list[tuple[str, str]]:
    """The (table, shown text) of every bucket the selector hid, as the page shows it."""
    return [
        (key, row[-1])
        for key in TABLES
        for row, cell in zip(shown[key], demographics.get(key, []), strict=True)
        if cell["persons"]["hidden"]
    ]


def test_the_run_page_shows_the_sites_merged_or_each_alone_in_english_and_in_korean(
    live_server: Any,
    start_worker: Any,
    cdm_gibleed_pg: Any,
    cdm_gibleed_duckdb_private: Any,
    oracle_dir: Path,
    chromium: Any,
    screenshots: Path,
) -> None:
    # The page lists sites in the order of their keys (random here), as the selector does.
    sources = sorted([make_source(cdm_gibleed_pg), make_source(cdm_gibleed_duckdb_private)], key=lambda s: s.key)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=sources,
        title="Bleeding across two sites",
        purpose="browser test of merged demographics",
        approval_number="IRB-D2",
    )
    expression = json.loads((oracle_dir / "cohorts" / f"{COHORT}.json").read_text())
    definition = definition_create(
        owner=researcher, name="GI bleed on two sites", expression=expression, project=project
    )
    start_worker(",".join(site_queue(s.key) for s in sources))
    site_labels = [f"{s.name} ({s.key})" for s in sources]
    one_site = next(s for s in sources if s.engine == "duckdb")

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        page.goto(f"{live_server.url}/cohorts/{definition.pk}/")
        for label in site_labels:
            page.get_by_label(label).check()
        page.get_by_role("button", name="Characterization", exact=True).click()
        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for()
        run_url = page.url
        picker = page.locator("#demographics-site")
        picker.wait_for()  # visible: hidden when there is one view only
        page.locator("#pyramid-chart svg.main-svg").first.wait_for()

        # "All sites (merged)", chosen first.
        label = page.locator("label[for=demographics-site]").inner_text()
        options = [(o.get_attribute("value"), o.inner_text()) for o in picker.locator("option").all()]
        merged_choice = picker.input_value()
        merged_charts = page.locator("#pyramid-chart svg.main-svg").count()
        merged_headings = page.locator("#pyramid-chart h3").all_inner_texts()
        merged_shown = shown_tables(page)
        page.screenshot(path=screenshots / "demographics-1-merged.png", full_page=True)

        # One site alone.
        picker.select_option(value=f"site-{one_site.key}")
        page.locator("[data-table=gender] tbody td:first-child", has_text=one_site.key).first.wait_for()
        site_choice = picker.input_value()
        site_charts = page.locator("#pyramid-chart svg.main-svg").count()
        site_headings = page.locator("#pyramid-chart h3").all_inner_texts()
        site_shown = shown_tables(page)
        page.screenshot(path=screenshots / "demographics-2-one-site.png", full_page=True)

        # The same page in Korean, through the header's language switcher.
        page.locator("#language-choice").select_option("ko")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_load_state()
        page.locator("html[lang=ko]").wait_for(state="attached")
        page.locator("#demographics-site option[value=merged]").wait_for(state="attached")
        korean_url = page.url
        korean_label = page.locator("label[for=demographics-site]").inner_text()
        korean_options = [(o.get_attribute("value"), o.inner_text()) for o in picker.locator("option").all()]
        korean_site_column = page.locator("[data-table=gender] tbody td").first.inner_text()
        korean_charts = page.locator("#pyramid-chart svg.main-svg").count()
        page.screenshot(path=screenshots / "demographics-3-korean.png", full_page=True)
        context.close()

    assert not errors, errors
    assert not failed, failed
    run_request = RunRequest.objects.get(requested_by=researcher, kind=RunKind.DEMOGRAPHICS)
    assert run_url.rstrip("/").endswith(f"/cohorts/runs/{run_request.pk}"), run_url
    assert korean_url == run_url
    # The very dict the page polls (status.json) for this user.
    result = run_request_result(request=run_request, role=researcher.role)
    assert result["finished"] and result["sites_answered"] == 2, result["sites"]
    merged = result["merged_demographics"]
    site = next(s for s in result["sites"] if s["source"] == one_site.key)

    # The selector: merged first and chosen, then the sites side by side, then each site by name.
    assert label == "Show"
    assert options == [("merged", "All sites (merged)"), ("each", "Each site")] + [
        (f"site-{s.key}", text) for s, text in zip(sources, site_labels, strict=True)
    ], options
    assert merged_choice == "merged"
    assert merged_charts > 0 and merged_headings[0].startswith("All sites (merged) — "), merged_headings

    # Merged: every table shows the selector's merged buckets, in its order, each with its protected display.
    assert merged_shown == expected_tables("all sites", merged), merged_shown
    assert merged_shown["gender"], "the cohort has persons of some gender"
    for row, cell in zip(merged_shown["gender"], merged["gender"], strict=True):
        if not cell["persons"]["hidden"]:
            assert row[-1] == f"{cell['persons']['value']:,}", (row, cell)

    # One site: the tables change to that site's own numbers.
    assert site_choice == f"site-{one_site.key}"
    assert site_charts > 0 and site_headings == [f"{one_site.name} — {site['privacy']['description']}"]
    assert site_shown == expected_tables(one_site.key, site["demographics"]), site_shown
    assert [r[-1] for r in site_shown["gender"]] != [r[-1] for r in merged_shown["gender"]]

    # A hidden bucket is its text ("<10", "… + <10", "… + hidden"), never a number that subtraction produced.
    hidden = hidden_cells(merged_shown, merged) + hidden_cells(site_shown, site["demographics"])
    assert hidden, "the cohort has at least one bucket under the threshold at a site"
    for table, text in hidden:
        assert not A_NUMBER.match(text) and ("<" in text or "hidden" in text), (table, text)

    # Korean: the label from the template's catalogue, the options from the JavaScript catalogue.
    assert korean_label == "보기"
    assert korean_options[:2] == [("merged", "모든 기관 (합산)"), ("each", "기관별")], korean_options
    assert [text for _, text in korean_options[2:]] == site_labels
    assert korean_site_column == "모든 기관"
    assert korean_charts > 0
