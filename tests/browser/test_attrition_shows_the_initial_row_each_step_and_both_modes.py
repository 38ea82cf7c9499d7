"""A researcher asks for the attrition of a definition on two sites and reads it as ATLAS shows it, in English and
in Korean, at 1400 px: the initial persons before any rule, then each rule's step with persons kept, lost and % of
the initial beside the rule's own count; by person and by event; a site picker; a funnel whose long rule names
wrap and show in full on hover, never cut off on the left. Every number on the page is the one the selector
released for this reader (``run_request_result``), computed by the site's real worker.
"""

from __future__ import annotations

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

TIMEOUT_MS = 60_000
PHARYNGITIS = 4112343

#: A rule name of 120 characters: the funnel must wrap it and show it whole on hover.
LONG_NAME = (
    "Aged eighteen or more at the index diagnosis of acute viral pharyngitis, counted at the start of the entry event"
    " (adult)"
)
RULES = [
    (LONG_NAME, {"DemographicCriteriaList": [{"Age": {"Value": 18, "Op": "gte"}}]}),
    ("female", {"DemographicCriteriaList": [{"Gender": [{"CONCEPT_ID": 8532}]}]}),
    ("aged under 60", {"DemographicCriteriaList": [{"Age": {"Value": 60, "Op": "lt"}}]}),
]
EXPRESSION: dict[str, Any] = {
    "ConceptSets": [
        {"id": 0, "name": "pharyngitis", "expression": {"items": [{"concept": {"CONCEPT_ID": PHARYNGITIS}}]}}
    ],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "All"},
    },
    "QualifiedLimit": {"Type": "All"},
    "ExpressionLimit": {"Type": "All"},
    "InclusionRules": [
        {"name": name, "expression": {"Type": "ALL", "CriteriaList": [], "Groups": [], **group}}
        for name, group in RULES
    ],
}


def table_rows(page: Any) -> list[list[str]]:
    return [row.locator("td").all_inner_texts() for row in page.locator("#attrition table.attrition tbody tr").all()]


def expected_rows(mode_table: dict[str, Any], initial_label: str, hidden: str = "hidden") -> list[list[str]]:
    """The rows the page must show for one mode of a site's released attrition table."""

    def derived(cell: dict[str, Any]) -> str:
        if cell["hidden"]:
            return hidden
        return cell["display"] or "—"

    rows = [
        ["0", initial_label, mode_table["initial"]["display"], "—", derived(mode_table["initial_percent"]), "—", "—"]
    ]
    for step in mode_table["steps"]:
        rows.append(
            [
                str(step["step"]),
                step["name"],
                step["kept"]["display"],
                derived(step["lost"]),
                derived(step["percent"]),
                derived(step["own"]),
                derived(step["own_percent"]),
            ]
        )
    return rows


assert len(LONG_NAME) == 120


def test_the_attrition_section_in_english_and_korean(
    live_server: Any,
    start_worker: Any,
    cdm_gibleed_pg: Any,
    cdm_gibleed_duckdb_private: Any,
    chromium: Any,
    screenshots: Path,
) -> None:
    sources = sorted([make_source(cdm_gibleed_pg), make_source(cdm_gibleed_duckdb_private)], key=lambda s: s.key)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=sources,
        title="Pharyngitis attrition",
        purpose="browser test of the attrition",
        approval_number="IRB-A1",
    )
    definition = definition_create(
        owner=researcher, name="Adult women with pharyngitis", expression=EXPRESSION, project=project
    )
    start_worker(",".join(site_queue(s.key) for s in sources))
    second = sources[1]

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        page.goto(f"{live_server.url}/cohorts/{definition.pk}/")
        for source in sources:
            page.get_by_label(f"{source.name} ({source.key})").check()
        page.get_by_role("button", name="Attrition", exact=True).click()
        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for()
        page.locator("#attrition-chart svg.main-svg").first.wait_for()
        run_url = page.url

        # By person: all sites together first, then the first site alone.
        picker = page.locator("#attrition-site")
        first_choice = picker.input_value()
        options = [(o.get_attribute("value"), o.inner_text()) for o in picker.locator("option").all()]
        merged_rows = table_rows(page)
        merged_caption = page.locator("#attrition table.attrition caption").inner_text()
        page.locator("#attrition").screenshot(path=screenshots / "attrition-0-merged.png")
        picker.select_option(value=sources[0].key)
        page.locator("#attrition table.attrition caption", has_text=sources[0].key).wait_for()
        person_rows = table_rows(page)
        headers = page.locator("#attrition table.attrition thead th").all_inner_texts()
        chart = page.locator("#attrition-chart").bounding_box()
        labels = page.locator("#attrition-chart .ytick text")
        label_boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
        label_texts = [labels.nth(i).text_content() or "" for i in range(labels.count())]
        label_lines = [labels.nth(i).locator("tspan.line").count() for i in range(labels.count())]
        page.locator("#attrition").screenshot(path=screenshots / "attrition-1-by-person.png")

        # The full name on hover of the long rule's bar.
        bar = page.locator("#attrition-chart .point path").nth(1).bounding_box()
        assert bar is not None
        page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        page.locator("#attrition-chart .hovertext").first.wait_for()
        hover = page.locator("#attrition-chart .hovertext").first.text_content() or ""
        page.locator("#attrition").screenshot(path=screenshots / "attrition-2-hover.png")

        # By event.
        page.get_by_label("By event").check()
        page.locator("#attrition table.attrition thead th", has_text="Events").wait_for()
        event_rows = table_rows(page)
        page.locator("#attrition-chart .point path").nth(3).wait_for()
        event_bars = page.locator("#attrition-chart .point").count()
        event_bar_text = page.locator("#attrition-chart .point text").first.text_content() or ""
        page.locator("#attrition").screenshot(path=screenshots / "attrition-3-by-event.png")

        # The other site, still by event.
        picker.select_option(value=second.key)
        page.locator("#attrition table.attrition caption", has_text=second.key).wait_for()
        second_rows = table_rows(page)
        csv_href = page.locator("#attrition [data-csv=attrition]").get_attribute("href")

        # Korean, through the header's language switcher.
        page.locator("#language-choice").select_option("ko")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_load_state()
        page.locator("html[lang=ko]").wait_for(state="attached")
        page.locator("#attrition-chart svg.main-svg").first.wait_for()
        page.get_by_label("환자 기준").check()
        page.locator("#attrition table.attrition thead th", has_text="환자 수").wait_for()
        korean_legend = page.locator("#attrition legend").inner_text()
        korean_modes = page.locator("#attrition fieldset label").all_inner_texts()
        korean_headers = page.locator("#attrition table.attrition thead th").all_inner_texts()
        korean_rows = table_rows(page)
        page.screenshot(path=screenshots / "attrition-4-korean.png", full_page=True)
        context.close()

    assert not errors, errors
    assert not failed, failed
    run_request = RunRequest.objects.get(requested_by=researcher, kind=RunKind.ATTRITION)
    assert run_url.rstrip("/").endswith(f"/cohorts/runs/{run_request.pk}"), run_url
    result = run_request_result(request=run_request, role=researcher.role)
    assert result["finished"] and result["sites_answered"] == 2, result["sites"]
    by_source = {site["source"]: site["attrition_table"] for site in result["sites"]}
    first = by_source[sources[0].key]

    # The sites together first, as released (each number one cell of both sites, under the strictest rule).
    assert first_choice == "merged"
    assert options == [("merged", "All sites (merged)")] + [(s.key, f"{s.name} ({s.key})") for s in sources]
    merged = result["merged_attrition"]
    assert merged_rows == expected_rows(merged["person"], "Initial persons (before any rule)")
    assert merged_caption.startswith("All sites (merged) — perturbed"), merged_caption
    assert merged["person"]["initial"]["value"] > first["person"]["initial"]["value"]

    # The table: the initial row, then each rule, exactly as released.
    assert headers == ["Step", "Rule", "Persons", "Lost", "% of initial", "Rule alone", "% alone"]
    assert person_rows == expected_rows(first["person"], "Initial persons (before any rule)")
    assert event_rows == expected_rows(first["event"], "Initial events (before any rule)")
    # The funnel is redrawn for the mode: four bars, the first the initial events.
    assert event_bars == 4 and event_bar_text.startswith(first["event"]["initial"]["display"]), event_bar_text
    assert second_rows == expected_rows(by_source[second.key]["event"], "Initial events (before any rule)")
    # The numbers mean something: several events per person, and each rule removes some.
    initial_persons = first["person"]["initial"]["value"]
    assert first["event"]["initial"]["value"] > initial_persons > first["person"]["steps"][-1]["kept"]["value"] > 0
    assert all(re.fullmatch(r"\d+\.\d%", row[4]) for row in person_rows), person_rows
    assert csv_href and "attrition" in csv_href, csv_href

    # The funnel: four bars, every label inside the chart (nothing cut off on the left), the long one wrapped.
    assert chart is not None
    assert len(label_boxes) == 4, label_texts
    for box in label_boxes:
        assert box is not None and box["x"] >= chart["x"], (box, chart)
    assert max(label_lines) >= 3, label_lines
    assert LONG_NAME.replace(" ", "") in hover.replace(" ", ""), hover

    # Korean: the template's words and run.js's words.
    assert korean_legend == "집계 기준"
    assert [text.strip() for text in korean_modes] == ["환자 기준", "사건 기준"]
    assert korean_headers == ["단계", "규칙", "환자 수", "제외", "초기 대비 %", "규칙 단독", "단독 %"]
    assert korean_rows == expected_rows(merged["person"], "초기 환자 (규칙 적용 전)", hidden="숨김")
