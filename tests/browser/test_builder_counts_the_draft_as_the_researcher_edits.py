"""Auto-count in a real browser: with the switch on, the builder counts the definition on screen after each change,
on the site's real Celery worker, and shows the new draft's number with the site's privacy rule — without saving a
version. The switch is remembered for the user."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from cohorts.definitions.services import definition_create
from cohorts.runs.models import RunRequest
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from tests.browser.test_builder import expected_expression
from worker.tests.helpers import generated_released, make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
RULE = "perturbed (at most ±3), counts under 10 hidden"


def aged(expression: dict[str, Any], years: int) -> dict[str, Any]:
    """``expression`` with the entry event restricted to persons aged at least ``years``: the builder's edit below."""
    edited = copy.deepcopy(expression)
    edited["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["Age"] = {"Op": "gte", "Value": years}
    return edited


def test_auto_count_shows_each_new_drafts_number_and_saves_no_version(
    live_server: Any, start_worker: Any, demo_site: Any, chromium: Any, screenshots: Path
) -> None:
    source = make_source(demo_site)
    researcher = make_user()
    project = make_running_project(
        investigator=researcher, sources=[source], title="Auto-count", purpose="browser test", approval_number="IRB-A1"
    )
    saved = expected_expression()
    definition = definition_create(owner=researcher, name="T2DM on metformin", expression=saved, project=project)
    with demo_site.connect() as engine:
        _, first = generated_released(engine, saved, demo_site, source, cohort_id=990_011)
        _, second = generated_released(engine, aged(saved, 50), demo_site, source, cohort_id=990_012)
    assert first != second, "the edit must change the number for the test to see it change"
    start_worker(site_queue(source.key))

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        page.goto(f"{live_server.url}/cohorts/{definition.pk}/edit/")
        page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()
        total = page.locator("[data-field=total]")
        state = page.locator("[data-field=count-state]")

        # Switching auto-count on counts the definition as it is.
        page.get_by_label("Count after each change").check()
        total.filter(has_text=f"{first:,}").wait_for()
        state.filter(has_text="finished").wait_for()
        rule_shown = page.locator("[data-field=total-privacy]").inner_text()
        page.screenshot(path=screenshots / "builder-auto-1-counted.png", full_page=True)
        save_block = page.locator(".builder-save")

        # An edit: the entry event only from age 50. The old number leaves the screen at once; the new draft's
        # number comes after the pause, counted by the worker.
        page.locator("#entry0-age-op").select_option("gte")
        page.locator("#entry0-age-value").fill("50")
        page.locator("#entry0-age-value").dispatch_event("change")
        stale = total.inner_text()
        save_block.screenshot(path=screenshots / "builder-auto-2-changed.png")
        page.locator("[data-sentence=entry]").filter(has_text="50").wait_for()
        total.filter(has_text=f"{second:,}").wait_for()
        state.filter(has_text="finished").wait_for()
        site_persons = page.locator("#builder-sites tbody tr").first.locator("td").nth(2).inner_text()
        status = page.locator("[data-field=save-status]").inner_text()
        save_block.screenshot(path=screenshots / "builder-auto-3-recounted.png")

        # The switch is remembered: on the next visit it is on, and the page counts what it opens with.
        page.reload()
        switch_kept = page.get_by_label("Count after each change").is_checked()
        total.filter(has_text=f"{first:,}").wait_for()
        context.close()

    assert not errors, errors
    assert not failed, failed
    assert stale == "—"
    assert rule_shown == RULE
    assert site_persons == f"{second:,}"
    assert status == "Unsaved changes."
    assert switch_kept
    # No version was saved by counting. The first count (the definition as saved) and the one on reopening are
    # counts of version 1; the edited draft's are drafts.
    assert [v.number for v in definition.versions.all()] == [1]
    requests = list(RunRequest.objects.filter(definition=definition).order_by("created_at"))
    assert requests[0].version.number == 1 and requests[-1].version.number == 1
    drafts = [r for r in requests if r.version is None]
    assert drafts and {r.runs.get().counted_expression == aged(saved, 50) for r in drafts} == {True}
