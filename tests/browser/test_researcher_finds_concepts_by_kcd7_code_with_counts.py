"""A researcher of a Korean hospital types KCD-7 codes in a real browser, in English and in Korean: the Concepts
page and the builder's concept search find the KCD-7 codes and the standard concepts they map to, show the
mapping, and show each hit's released counts per site in the same words (one legend per list); a misspelled word
still finds diabetes. Screenshots at 1400 px in var/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from cohorts.concept_sets.counts import concept_counts_refresh_at_site
from cohorts.concept_sets.selectors import concept_counts_for_user, count_legend
from tests.browser.conftest import sign_in, watch
from warehouse.models import Concept
from worker.tests.helpers import PASSWORD, make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
T2DM, HYPERTENSION = 201826, 320128


def _row(page: Any, concept_id: int) -> Any:
    """The results row of a concept (its first cell is the concept id)."""
    first_cell = page.locator("td:first-child", has_text=re.compile(rf"^{concept_id}$"))
    return page.locator("table.concepts-results tbody tr", has=first_cell)


def test_kcd7_codes_find_mapped_concepts_with_counts_on_the_concepts_page_and_in_the_builder(
    live_server: Any, demo_site: Any, chromium: Any, screenshots: Path
) -> None:
    source = make_source(demo_site, name="Gangwon demo hospital")
    researcher = make_user()
    make_running_project(
        investigator=researcher, sources=[source], title="Diabetes in Gangwon", purpose="browser test",
        approval_number="IRB-K7",
    )  # fmt: skip
    concept_counts_refresh_at_site(source_id=source.pk)
    e11_9 = Concept.objects.get(vocabulary_id="KCD7", concept_code="E11.9")
    # What each language must show for type 2 diabetes at the site: the selector's words (the released counts).
    expected: dict[str, tuple[str, str]] = {}
    for language in ("en", "ko"):
        with translation.override(language):
            entry = concept_counts_for_user(researcher, [T2DM])[T2DM][0]
            expected[language] = (f"{entry['records_text']} / {entry['persons_text']}", count_legend())
    assert isinstance(concept_counts_for_user(researcher, [T2DM])[T2DM][0]["persons"], int)

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        for language, locale in (("en", "en-US"), ("ko", "ko-KR")):
            cells, legend = expected[language]
            context = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            watch(page, errors, failed)
            if language == "en":
                sign_in(page, live_server.url, researcher.username)
            else:  # the same form, its labels in Korean
                page.goto(f"{live_server.url}/accounts/login/")
                page.locator("input[name=login]").fill(researcher.username)
                page.locator("input[name=password]").fill(PASSWORD)
                page.locator("button.primary[type=submit]").click()
                page.wait_for_load_state()

            # The Concepts page: a KCD-7 code, the concept it maps to, the mapping and the counts.
            page.goto(f"{live_server.url}/cohorts/concepts/?q=E11")
            row = _row(page, T2DM)
            row.get_by_text(f"KCD7 E11.9 → {T2DM} Type 2 diabetes mellitus").wait_for()
            assert cells in row.inner_text()
            source_row = _row(page, e11_9.concept_id)
            assert f"KCD7 E11.9 → {T2DM} Type 2 diabetes mellitus" in source_row.inner_text()
            assert page.locator(".concepts-legend").count() == 1
            assert page.locator(".concepts-legend").inner_text() == legend
            page.screenshot(path=screenshots / f"kcd7-concepts-{language}.png", full_page=True)

            # A misspelling still finds diabetes on the demo's vocabulary.
            page.goto(f"{live_server.url}/cohorts/concepts/?q=diabtes")
            page.locator(f"table.concepts-results a[href$='/concepts/{T2DM}/']").first.wait_for()

            # The builder's concept search: the same hits, mapping and counts, and one legend.
            page.goto(f"{live_server.url}/cohorts/new/")
            page.locator("#cs0-q").fill("e119")
            page.locator("#cs0-go").click()
            hits = page.locator("[data-block=concept-set-0] .builder-results")
            hit = hits.locator("li", has=page.locator("#cs0-hit1"))
            hit.get_by_text(f"KCD7 E11.9 → {T2DM} Type 2 diabetes mellitus").wait_for()
            assert f"{source.name}: {cells}" in hit.inner_text()
            first = hits.locator("li", has=page.locator("#cs0-hit0")).inner_text()
            assert f"KCD7 E11.9 → {T2DM} Type 2 diabetes mellitus" in first  # the source code and where it maps
            assert page.locator("[data-block=concept-set-0] .concepts-legend").inner_text() == legend
            page.locator("#cs0-hit1").click()
            page.locator("[data-block=concept-set-0] .builder-items").get_by_text(str(T2DM), exact=True).wait_for()
            page.locator("[data-block=concept-set-0]").screenshot(path=screenshots / f"kcd7-builder-{language}.png")
            page.screenshot(path=screenshots / f"kcd7-builder-page-{language}.png", full_page=True)

            # The concept set editor's search: the same mapping, counts and legend.
            page.goto(f"{live_server.url}/cohorts/concept-sets/new/")
            page.locator("#set-q").fill("I10")
            page.locator("#set-search button[type=submit]").click()
            found = page.locator("#set-search-results li").filter(has_text=f"KCD7 I10 → {HYPERTENSION} Essential")
            found.first.wait_for()
            assert f"{source.name}: " in found.last.inner_text()
            assert page.locator("#set-search-status").inner_text() == legend
            page.screenshot(path=screenshots / f"kcd7-concept-set-{language}.png", full_page=True)
            context.close()
    assert errors == [], errors
    assert failed == [], failed
