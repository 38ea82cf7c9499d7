"""The characterization of a request on two sites, in Chromium at 1400 px: the run page's "Show" selector offers
the sites' merged numbers, every site side by side and each site alone; the tables show exactly what
``cohorts.runs.selectors`` protected and computed (a hidden cell as its text, never a number worked out from the
others, and with no percentage or difference), beside the site population; the privacy rule is said once per
section; no table reaches out of its card and each section fits one screen; and the page reads in Korean once the
language is switched, so the page's script text really goes through Django's JavaScript catalogue.

The request is asked on the definition page (its site boxes and its Characterization button) while a real Celery
worker answers for both sites: GiBleed in PostgreSQL and GiBleed in DuckDB.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cohorts.definitions.services import definition_create
from cohorts.runs.breakdowns import ETHNICITIES, RACES
from cohorts.runs.choices import RunKind
from cohorts.runs.models import RunRequest
from cohorts.runs.selectors import run_request_result
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

COHORT = "h04_gibleed_censored_by_acetaminophen"
TIMEOUT_MS = 45_000
WIDTH = 1400
#: The characterization's tables and the label columns characterization.js shows before the figures; the tables
#: compared with the site population show its percentage and the standardized difference after the cohort's.
TABLES = {
    "age_pyramid": ("age_group", "gender"),
    "gender": ("name",),
    "race": ("name",),
    "ethnicity": ("name",),
    "index_year": ("year",),
    "top_conditions": ("concept_id", "name"),
    "top_drugs": ("concept_id", "name"),
    "top_procedures": ("concept_id", "name"),
    "top_measurements": ("concept_id", "name"),
}
COMPARED = {"age_pyramid", "gender", "top_conditions", "top_drugs", "top_procedures", "top_measurements"}
#: The fixed sexes as the page names them (its own labels, translated), by concept.
SEXES = {8507: "Male", 8532: "Female", 0: "Other or unknown"}
FIXED_NAMES = {concept_id: name for concept_id, name in (*RACES, *ETHNICITIES)}
A_NUMBER = re.compile(r"^[0-9][0-9,]*$")
NOT_SHOWN = "—"


def shown_tables(page: Any) -> dict[str, list[list[str]]]:
    """Each characterization table of the page as rows of cell texts (the age table too, folded under the chart)."""
    return {
        key: [
            cells
            for cells in (
                row.locator("td").all_text_contents() for row in page.locator(f"[data-table={key}] tbody tr").all()
            )
            if len(cells) > 1  # not the "Nothing to show." row
        ]
        for key in TABLES
    }


def _percent(value: Any) -> str:
    return NOT_SHOWN if value is None else f"{value:.1f}%"


def _difference(value: Any) -> str:
    if value is None:
        return NOT_SHOWN
    return "0.00" if value == 0 else ("+" if value > 0 else "") + f"{value:.2f}"


def _label(cell: dict[str, Any], table: str, column: str) -> str:
    if table == "gender" and column == "name":
        return SEXES[cell["concept_id"]]
    if table in ("race", "ethnicity") and column == "name":
        # The fixed categories by the portal's own names (breakdowns.py), as the page translates them.
        return FIXED_NAMES[cell["concept_id"]]
    if column == "gender":
        return SEXES[cell["gender_concept_id"]]
    return "" if cell.get(column) is None else str(cell[column])


def _rows(demographics: dict[str, Any], table: str) -> list[dict[str, Any]]:
    if table.startswith("top_"):
        return demographics.get("top_at_index", {}).get(table.removeprefix("top_"), [])
    return demographics.get(table, [])


def expected_tables(demographics: dict[str, Any]) -> dict[str, list[list[str]]]:
    """What the page must show for one view, read from the selector's result: the bucket or concept, its protected
    display, its percentage of the cohort and, where compared, the population's percentage and the standardized
    difference, all as the selector released them, in its order."""
    out: dict[str, list[list[str]]] = {}
    for table, columns in TABLES.items():
        out[table] = []
        for cell in _rows(demographics, table):
            row = [*(_label(cell, table, c) for c in columns), cell["persons"]["display"], _percent(cell["percent"])]
            if table in COMPARED:
                # The population's share, or its released count where it gives none ("<10", "… + <10").
                population = cell.get("population")
                share = _percent(cell.get("population_percent"))
                if population is not None and cell.get("population_percent") is None:
                    share = population["display"]
                row += [share, _difference(cell.get("smd"))]
            out[table].append(row)
    return out


def hidden_cells(shown: dict[str, list[list[str]]], demographics: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The (table, shown figures) of every bucket the selector hid, as the page shows it: its count and after."""
    return [
        (key, row[len(TABLES[key]) :])
        for key in TABLES
        for row, cell in zip(shown[key], _rows(demographics, key), strict=True)
        if cell["persons"]["hidden"]
    ]


def layout(page: Any) -> dict[str, Any]:
    """The heights of the characterization's sections and every table that reaches past its card's inner edge."""
    return page.evaluate(
        """() => {
        const sections = Array.from(document.querySelectorAll("#demographics .char-section"));
        const spills = [];
        sections.forEach((card) => {
          const box = card.getBoundingClientRect();
          card.querySelectorAll("table").forEach((table) => {
            const t = table.getBoundingClientRect();
            // A table folded in a closed <details> is not shown: nothing to spill. Otherwise it must fit its card
            // and its own holder (no part hidden behind a scroll bar).
            if (table.closest("details:not([open])")) return;
            const holder = table.parentElement;
            if (t.right > box.right - 1 || t.left < box.left || t.width > holder.clientWidth + 1) {
              spills.push(holder.dataset.table);
            }
          });
        });
        return { heights: sections.map((card) => card.getBoundingClientRect().height), spills: spills };
      }"""
    )


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
        context = browser.new_context(viewport={"width": WIDTH, "height": 900})
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
        merged_title = page.locator("[data-field=view-title]").inner_text()
        merged_rules = page.locator("#demographics [data-field=rule]").all_inner_texts()
        merged_population = page.locator("[data-field=population]").inner_text()
        merged_shown = shown_tables(page)
        merged_layout = layout(page)
        # The age table folded under the pyramid, unfolded: it fits its card too.
        page.locator("#char-demographics details summary").click()
        unfolded_layout = layout(page)
        page.locator("#char-demographics details summary").click()
        page.screenshot(path=screenshots / "characterization-1-merged.png", full_page=True)
        for i, section in enumerate(page.locator("#demographics .char-section").all()):
            section.screenshot(path=screenshots / f"characterization-1-merged-section-{i}.png")

        # One site alone.
        picker.select_option(value=f"site-{one_site.key}")
        page.locator("[data-field=view-title]").filter(has_text=one_site.name).wait_for()
        site_choice = picker.input_value()
        site_charts = page.locator("#pyramid-chart svg.main-svg").count()
        site_rules = page.locator("#demographics [data-field=rule]").all_inner_texts()
        site_shown = shown_tables(page)
        site_layout = layout(page)
        page.screenshot(path=screenshots / "characterization-2-one-site.png", full_page=True)

        # Every site side by side: a site column before each row.
        picker.select_option(value="each")
        page.locator("[data-field=view-title]").filter(has_text="Each site").wait_for()
        each_sites = page.locator("[data-table=gender] tbody tr td:first-child").all_inner_texts()
        each_layout = layout(page)
        page.screenshot(path=screenshots / "characterization-2-each-site.png", full_page=True)

        # The same page in Korean, through the header's language switcher.
        page.locator("#language-choice").select_option("ko")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_load_state()
        page.locator("html[lang=ko]").wait_for(state="attached")
        page.locator("#demographics-site option[value=merged]").wait_for(state="attached")
        page.locator("#pyramid-chart svg.main-svg").first.wait_for()
        korean_url = page.url
        korean_label = page.locator("label[for=demographics-site]").inner_text()
        korean_options = [(o.get_attribute("value"), o.inner_text()) for o in picker.locator("option").all()]
        korean_title = page.locator("[data-field=view-title]").inner_text()
        korean_heading = page.locator("#demographics h2").inner_text()
        korean_headers = page.locator("[data-table=top_conditions] thead th").all_inner_texts()
        korean_sexes = page.locator("[data-table=gender] tbody tr td:first-child").all_inner_texts()
        korean_charts = page.locator("#pyramid-chart svg.main-svg").count()
        korean_layout = layout(page)
        page.screenshot(path=screenshots / "characterization-3-korean.png", full_page=True)
        for i, section in enumerate(page.locator("#demographics .char-section").all()):
            section.screenshot(path=screenshots / f"characterization-3-korean-section-{i}.png")
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
    assert merged_charts > 0 and merged_title == "All sites (merged)"
    # The rule is said once per section (the demographics and each domain), not in every row.
    assert len(merged_rules) == 5 and all(merged["privacy"]["description"] in text for text in merged_rules)
    assert merged_population == (
        f"Site population: {merged['population']['persons']['display']} persons with an observation period."
    )

    # Merged: every table shows the selector's merged buckets and concepts, in its order, each with its protected
    # display and the percentages and differences the selector computed from released counts.
    assert merged_shown == expected_tables(merged), merged_shown
    assert merged_shown["gender"], "the cohort has persons of some gender"
    assert merged_shown["top_conditions"], "the cohort has conditions in the year before index"
    for row, cell in zip(merged_shown["gender"], merged["gender"], strict=True):
        if not cell["persons"]["hidden"]:
            assert row[1] == f"{cell['persons']['value']:,}", (row, cell)
    compared = [row for row in merged["top_at_index"]["conditions"] if row["smd"] is not None]
    assert compared, "some condition is compared with the site population"

    # One site: the tables change to that site's own numbers.
    assert site_choice == f"site-{one_site.key}"
    assert site_charts > 0 and all(site["privacy"]["description"] in text for text in site_rules)
    assert site_shown == expected_tables(site["demographics"]), site_shown
    assert [r[1] for r in site_shown["gender"]] != [r[1] for r in merged_shown["gender"]]
    assert each_sites == [s.key for s in sources for _ in range(3)], each_sites

    # A hidden bucket is its text ("<10", "… + <10", "… + hidden"), never a number that subtraction produced, and
    # it has no percentage and no difference.
    hidden = hidden_cells(merged_shown, merged) + hidden_cells(site_shown, site["demographics"])
    assert hidden, "the cohort has at least one bucket under the threshold at a site"
    for table, (text, *figures) in hidden:  # figures: % of cohort, % of population, standardized difference
        assert not A_NUMBER.match(text) and ("<" in text or "hidden" in text), (table, text)
        assert figures[0] == NOT_SHOWN and (table not in COMPARED or figures[2] == NOT_SHOWN), (table, figures)
    # A population count that gives no percentage is its text there, never a number worked out from others.
    for key in COMPARED:
        for row, cell in zip(merged_shown[key], _rows(merged, key), strict=True):
            if cell.get("population") is not None and cell["population"]["hidden"]:
                assert not A_NUMBER.match(row[len(TABLES[key]) + 2]) and row[-1] == NOT_SHOWN, (key, row)

    # Layout at 1400 px: no table reaches out of its card, and each section fits one screen (the merged and one
    # site's views; the side-by-side view lists every site's rows).
    for shown_layout in (merged_layout, unfolded_layout, site_layout, each_layout, korean_layout):
        assert shown_layout["spills"] == [], shown_layout
    for shown_layout in (merged_layout, site_layout, korean_layout):
        assert max(shown_layout["heights"]) <= 900, shown_layout

    # Korean: the label from the template's catalogue, the options and the table text from the JavaScript one.
    assert korean_label == "보기"
    assert korean_options[:2] == [("merged", "모든 기관 (합산)"), ("each", "기관별")], korean_options
    assert [text for _, text in korean_options[2:]] == site_labels
    assert korean_title == "모든 기관 (합산)"
    assert korean_heading.startswith("특성 분석")
    assert "코호트 중 %" in korean_headers and "표준화 차이" in korean_headers, korean_headers
    assert korean_sexes == ["남성", "여성", "기타 또는 알 수 없음"]
    assert korean_charts > 0
