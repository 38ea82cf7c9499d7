"""A researcher manages definitions in a real browser (1280×800): searches the list, opens a definition,
compares two versions in words, duplicates it and shares the copy with a project. Each page is screenshotted
under var/screenshots/ and must fit the width, and the skip link is the first thing the keyboard reaches."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from accounts.tests.factories import SourceFactory
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.selectors import definition_shares
from cohorts.definitions.services import definition_create, definition_save_version
from cohorts.tests.conftest import oracle_definition
from worker.tests.helpers import PASSWORD, make_running_project, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
WIDTH, HEIGHT = 1280, 800


def test_a_researcher_searches_compares_duplicates_and_shares_a_definition(
    live_server: Any, chromium: Any, screenshots: Path
) -> None:
    researcher = make_user()
    project = make_running_project(
        investigator=researcher,
        sources=[SourceFactory(key="bsite", fingerprint="b" * 64)],
        title="Dementia outcomes",
        purpose="browser test",
        approval_number="IRB-B2",
    )
    first = oracle_definition("pl_3385")
    definition = definition_create(owner=researcher, name="Alzheimer's disease", expression=first, project=project)
    second = copy.deepcopy(first)
    second["PrimaryCriteria"]["ObservationWindow"]["PriorDays"] = 365
    definition_save_version(definition=definition, expression=second, author=researcher, note="a year of history")
    definition_create(owner=researcher, name="Hypertension", expression=first, project=project)

    js_errors: list[str] = []
    too_wide: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: js_errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: js_errors.append(f"{page.url}: uncaught {e}"))

        def shot(name: str) -> None:
            if page.evaluate("document.documentElement.scrollWidth") > WIDTH:
                too_wide.append(page.url)
            page.screenshot(path=screenshots / f"definitions-{name}.png", full_page=True)

        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("User name or e-mail").fill(researcher.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.keyboard.press("Tab")
        skip_link_first = page.evaluate("document.activeElement.className") == "skip-link"

        page.get_by_role("link", name="Cohorts", exact=True).first.click()
        page.get_by_label("Search name or description").fill("alzheimer")
        page.get_by_role("button", name="Search", exact=True).click()
        page.locator("#definitions tbody tr").first.wait_for()
        listed = page.locator("#definitions tbody tr").count()
        shot("1-list-search")

        page.get_by_role("link", name="Alzheimer's disease").click()
        page.get_by_role("heading", name="Alzheimer's disease", level=1).wait_for()
        shot("2-detail")

        page.get_by_role("link", name="Versions", exact=True).click()
        page.get_by_label("From version").select_option("1")
        page.get_by_label("To version").select_option("2")
        shot("3-versions")
        page.get_by_role("button", name="Compare").click()
        page.get_by_role("heading", name="What changed from version 1 to version 2").wait_for()
        changes = page.locator("#changes li").all_inner_texts()
        shot("4-compare")

        page.get_by_role("link", name="Back to the definition").click()
        page.get_by_label("Name of the copy").fill("Alzheimer's disease, my variant")
        page.get_by_role("button", name="Duplicate").click()
        page.get_by_role("heading", name="Alzheimer's disease, my variant", level=1).wait_for()
        copy_url = page.url
        shot("5-duplicate")

        page.get_by_label("Share with a project").select_option(label="Dementia outcomes")
        page.get_by_role("button", name="Share with the project").click()
        page.locator(".messages li").filter(has_text="Shared with the members").wait_for()
        shared_rows = page.locator("#sharing table tbody tr").all_inner_texts()
        shot("6-shared")
        context.close()

    assert skip_link_first
    assert listed == 1
    assert changes == ["Observation window before index: 0 → 365 days"]
    assert any("Dementia outcomes" in row for row in shared_rows), shared_rows
    assert not too_wide, too_wide
    assert not js_errors, js_errors
    assert not failed, failed
    duplicate = CohortDefinition.objects.get(name="Alzheimer's disease, my variant")
    assert copy_url.rstrip("/").endswith(f"/cohorts/{duplicate.pk}")
    assert duplicate.owner == researcher and duplicate.project == project
    assert duplicate.latest_version().expression == definition.latest_version().expression
    assert definition_shares(duplicate)["projects"] == [project]
