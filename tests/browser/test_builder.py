"""The cohort builder in a real browser: a researcher builds "type 2 diabetes, with at least one metformin exposure
in the 365 days before" from blocks on a demo-like synthetic site, counts it with the site's real Celery worker,
sees the number, and saves a version; and an imported ATLAS definition saved unchanged from the builder comes back
identical."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.definitions.builder import empty_expression
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from worker.tests.helpers import generated_released, make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
T2DM, METFORMIN = 201826, 1503297
IMPORTED = "h06_pharyngitis_at_least_two_nested"


def expected_expression() -> dict[str, Any]:
    """What the clicks below should build, in Circe JSON."""

    def concept_set(codeset_id: int, name: str, concept: dict[str, Any]) -> dict[str, Any]:
        item = {"concept": concept, "isExcluded": False, "includeDescendants": True, "includeMapped": False}
        return {"id": codeset_id, "name": name, "expression": {"items": [item]}}

    expression = empty_expression()
    expression["ConceptSets"] = [
        concept_set(0, "Type 2 diabetes", {"CONCEPT_ID": T2DM}),
        concept_set(1, "Metformin", {"CONCEPT_ID": METFORMIN}),
    ]
    expression["InclusionRules"] = [
        {
            "name": "Metformin in the year before",
            "expression": {
                "Type": "ALL",
                "CriteriaList": [
                    {
                        "Criteria": {"DrugExposure": {"CodesetId": 1}},
                        "StartWindow": {
                            "Start": {"Days": 365, "Coeff": -1},
                            "End": {"Days": 0, "Coeff": 1},
                            "UseIndexEnd": False,
                            "UseEventEnd": False,
                        },
                        "Occurrence": {"Type": 2, "Count": 1},
                    }
                ],
                "DemographicCriteriaList": [],
                "Groups": [],
            },
        }
    ]
    return expression


def test_a_researcher_builds_counts_and_saves_a_two_block_cohort(
    live_server: Any, start_worker: Any, demo_site: Any, chromium: Any, screenshots: Path
) -> None:
    source = make_source(demo_site)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=[source],
        title="Metformin before diabetes",
        purpose="browser test",
        approval_number="IRB-B2",
    )
    with demo_site.connect() as engine:
        # What the page must show: the cohort generated here with the site's keys, perturbed by its rule.
        truth, expected = generated_released(engine, expected_expression(), demo_site, source, cohort_id=990_002)
    assert abs(expected - truth) <= 3
    start_worker(site_queue(source.key))

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)

        page.get_by_role("link", name="Cohorts", exact=True).first.click()
        page.get_by_role("link", name="New definition").first.click()
        page.get_by_role("heading", name="New cohort definition").wait_for()
        page.locator("#builder-name").fill("T2DM on metformin")
        page.locator("#builder-project").select_option(value=str(project.pk))

        # Concept set 1: type 2 diabetes, found through the vocabulary search.
        page.locator("#cs0-name").fill("Type 2 diabetes")
        page.locator("#cs0-q").fill("type 2 diabetes")
        page.locator("#cs0-go").click()
        page.get_by_role("button", name=f"Add Type 2 diabetes mellitus ({T2DM})", exact=True).click()
        page.locator("[data-block=concept-set-0] .builder-items").get_by_text(str(T2DM), exact=True).wait_for()

        # Concept set 2: metformin, by its concept id.
        page.get_by_role("button", name="Add a concept set").click()
        page.locator("#cs1-name").fill("Metformin")
        page.locator("#cs1-byid").fill(str(METFORMIN))
        page.locator("#cs1-add").click()
        page.locator("[data-block=concept-set-1] .builder-items").get_by_text(str(METFORMIN), exact=True).wait_for()

        # The entry event starts as the first condition of concept set 1; check its sentence.
        entry = page.locator("[data-sentence=entry]")
        entry.filter(has_text="a condition of “Type 2 diabetes”, the first in the person's history").wait_for()

        # Rule: at least 1 metformin exposure in the 365 days before the index date.
        page.get_by_role("button", name="Add an inclusion rule").click()
        page.locator("#rule0-name").fill("Metformin in the year before")
        page.get_by_role("button", name="Add criterion").click()
        page.locator("#rule0-k0-c-domain").select_option("DrugExposure")
        page.locator("#rule0-k0-c-set").select_option("1")
        sentence = page.locator("[data-sentence=rule-0]")
        sentence.filter(
            has_text="at least 1 × a drug exposure of “Metformin”, starting between 365 days before the index date "
            "and the index date"
        ).wait_for()
        page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()
        page.screenshot(path=screenshots / "builder-1-built.png", full_page=True)

        # Count: saves the first version, starts the run on the site, shows the number.
        page.get_by_role("button", name="Count", exact=True).click()
        page.locator("[data-field=save-status]").filter(has_text="Saved as version 1.").wait_for()
        page.locator("[data-field=count-state]").filter(has_text="finished").wait_for()
        total = page.locator("[data-field=total]").inner_text()
        site_cells = page.locator("#builder-sites tbody tr").first.locator("td")
        site_state, site_persons = site_cells.nth(1).inner_text(), site_cells.nth(2).inner_text()
        edit_url = page.url
        page.screenshot(path=screenshots / "builder-2-counted.png", full_page=True)

        # Save a version with a note: every save is a version.
        page.locator("#builder-note").fill("checked the count")
        page.get_by_role("button", name="Save version").click()
        page.locator("[data-field=save-status]").filter(has_text="Saved as version 2.").wait_for()
        context.close()

    assert not errors, errors
    assert not failed, failed
    assert (site_state, site_persons, total) == ("succeeded", f"{expected:,}", f"{expected:,}")
    definition = CohortDefinition.objects.get(owner=researcher)
    assert edit_url.endswith(f"/cohorts/{definition.pk}/edit/")
    assert definition.project == project
    versions = list(definition.versions.order_by("number"))
    assert [v.note for v in versions] == ["created", "checked the count"]
    saved = versions[-1].expression
    search_concept = saved["ConceptSets"][0]["expression"]["items"][0]["concept"]
    assert search_concept["CONCEPT_NAME"] == "Type 2 diabetes mellitus"  # kept from the search hit, as ATLAS does
    expected_json = expected_expression()
    expected_json["ConceptSets"][0]["expression"]["items"][0]["concept"] = search_concept
    assert saved == expected_json


def test_every_oracle_atlas_definition_saved_unchanged_from_the_builder_comes_back_identical(
    live_server: Any, oracle_dir: Path, chromium: Any, screenshots: Path
) -> None:
    """The page renders every block of each definition and saves what it holds: nothing may be added or lost."""
    researcher = make_user()
    originals = {
        entry["name"]: json.loads((oracle_dir / "cohorts" / f"{entry['name']}.json").read_text())
        for entry in json.loads((oracle_dir / "manifest.json").read_text())
    }
    definitions = {
        name: definition_create(owner=researcher, name=name, expression=copy.deepcopy(expression))
        for name, expression in originals.items()
    }

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        page.goto(f"{live_server.url}/cohorts/{definitions[IMPORTED].pk}/")
        page.get_by_role("link", name="Edit in builder").click()
        page.locator("[data-sentence=rule-0]").filter(has_text="at least 2 of").wait_for()
        page.screenshot(path=screenshots / "builder-3-imported.png", full_page=True)
        for definition in definitions.values():
            page.goto(f"{live_server.url}/cohorts/{definition.pk}/edit/")
            page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()
            page.get_by_role("button", name="Save version").click()
            page.locator("[data-field=save-status]").filter(has_text="Saved as version 2.").wait_for()
        context.close()

    assert not errors, errors
    assert not failed, failed
    for name, definition in definitions.items():
        latest = definition.latest_version()
        assert (name, latest.number) == (name, 2)
        assert latest.expression == originals[name], name
