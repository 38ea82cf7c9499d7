"""The journeys of the browser portal, end to end in Chromium against a live server and real Celery workers:

a) a researcher finds "diabetes" in the vocabulary, builds a two-rule cohort in the builder, counts it on two sites
   (each a synthetic OMOP warehouse in DuckDB), opens the result with its attrition funnel and age pyramid, saves a
   version and shares the definition with the project;
b) a partner of that project sees the shared cohort with its count rounded by the privacy rule;
c) an admin, signed in with password and authenticator code, approves a pending account, which can then sign in.

Every page must load without a console error (a Content Security Policy violation is one) and without a 4xx/5xx
response; each main page is screenshotted under var/screenshots/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

from accounts.choices import AccountStatus, Role
from accounts.models import User
from accounts.services import membership_approve, membership_request, organisation_get_or_create
from accounts.tests.factories import PASSWORD as FACTORY_PASSWORD
from accounts.tests.factories import UserFactory, enroll_totp
from cohorts.definitions.builder import empty_expression
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.selectors import definition_shares
from cohorts.runs.generation import generate_cohort
from cohorts.runs.services import site_queue
from disclosure.record_keys import record_keys_ensure
from disclosure.rules import cell_sum, protect, protect_cell, strictest
from disclosure.selectors import rule_for
from tests.browser.conftest import sign_in
from warehouse.synthetic.synthesis import write_cdm
from warehouse.vocabulary.load import vocabulary_load_from_directory
from worker.tests.helpers import make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 60_000
T2DM, METFORMIN = 201826, 1503297
ROUNDED = re.compile(r"^(<10|[1-9][0-9,]*0)$")


@pytest.fixture
def two_sites(tmp_path: Path) -> list[Any]:
    """Two small warehouses of the demo's synthetic generator, with different persons (seeds), each in a DuckDB
    file of its own for the worker; the vocabulary (the same at both) is loaded once into the portal's search."""
    from conftest import _load_test_cdm

    cdms = []
    for index, (persons, seed) in enumerate([(1_500, 7), (1_200, 11)]):
        directory = tmp_path / f"cdm{index}"
        directory.mkdir()
        write_cdm(directory, persons=persons, seed=seed, chunk_size=1_000, jobs=1)
        if index == 0:
            vocabulary_load_from_directory(directory=directory)
        cdms.append(
            _load_test_cdm("duckdb", f"duckdb:///{tmp_path / f'site{index}.duckdb'}", directory, "cdm", "results")
        )
    return cdms


def built_expression() -> dict[str, Any]:
    """What the clicks of journey (a) build: type 2 diabetes, with metformin and a diabetes record in the year
    before. Used to compute each site's expected count directly."""

    def concept_set(codeset_id: int, name: str, concept_id: int) -> dict[str, Any]:
        item = {"concept": {"CONCEPT_ID": concept_id}, "isExcluded": False, "includeDescendants": True}
        return {"id": codeset_id, "name": name, "expression": {"items": [item | {"includeMapped": False}]}}

    def rule(name: str, domain: str, codeset_id: int) -> dict[str, Any]:
        window = {"Start": {"Days": 365, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}}
        criterion = {
            "Criteria": {domain: {"CodesetId": codeset_id}},
            "StartWindow": window | {"UseIndexEnd": False, "UseEventEnd": False},
            "Occurrence": {"Type": 2, "Count": 1},
        }
        group = {"Type": "ALL", "CriteriaList": [criterion], "DemographicCriteriaList": [], "Groups": []}
        return {"name": name, "expression": group}

    expression = empty_expression()
    expression["ConceptSets"] = [concept_set(0, "Diabetes", T2DM), concept_set(1, "Metformin", METFORMIN)]
    expression["InclusionRules"] = [
        rule("Metformin in the year before", "DrugExposure", 1),
        rule("Diabetes recorded in the year before", "ConditionOccurrence", 0),
    ]
    return expression


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


class Watcher:
    """Collects console errors, uncaught exceptions and failed responses of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: self.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: uncaught {e}"))
        return page


def new_page(browser: Any, watcher: Watcher) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context, watcher.watch(context.new_page())


def test_a_researcher_builds_counts_and_shares_a_cohort_a_partner_sees_it_rounded_and_an_admin_approves_an_account(
    live_server: Any, start_worker: Any, two_sites: list[Any], chromium: Any, screenshots: Path
) -> None:
    sources = [make_source(cdm, key=key) for cdm, key in zip(two_sites, ("jrna", "jrnb"), strict=True)]
    researcher = make_user()
    admin = make_user(role=Role.ADMIN)
    secret = enroll_totp(admin)
    project = make_running_project(
        investigator=researcher,
        sources=sources,
        title="Diabetes on metformin",
        purpose="browser journeys",
        approval_number="IRB-J1",
        created_by=admin,
    )
    partner = make_user(role=Role.PARTNER)
    steward = make_user(role=Role.STEWARD)
    membership = membership_request(project=project, user=partner)
    membership_approve(membership=membership, approver=researcher)
    membership_approve(membership=membership, approver=steward)
    newcomer_organisation = organisation_get_or_create(name="Newcomer Hospital")
    newcomer = UserFactory(username="newcomer", organisation=None, status=AccountStatus.PENDING)
    # Each site's count as the portal releases it: the cohort generated here with the site's record keys (the
    # worker keys its persons with the same secret), perturbed by the site's rule.
    generated = []
    for cdm, source in zip(two_sites, sources, strict=True):
        with cdm.connect() as engine:
            generated.append(
                generate_cohort(
                    engine,
                    built_expression(),
                    cdm_schema=cdm.cdm_schema,
                    vocabulary_schema=cdm.vocabulary_schema,
                    results_schema=cdm.results_schema,
                    cohort_id=990_006,
                    record_keys=record_keys_ensure(engine, source=source),
                )
            )
    rules = [rule_for(source=source, role="researcher") for source in sources]
    expected = [protect(g.persons, rule, g.persons_key).value or 0 for g, rule in zip(generated, rules, strict=True)]
    expected_steps = [
        protect(g.attrition[-1][1], rule, g.attrition_keys[-1]).value or 0
        for g, rule in zip(generated, rules, strict=True)
    ]
    expected_total = protect_cell(cell_sum((g.persons, g.persons_key) for g in generated), strictest(rules)).value
    truth = sum(g.persons for g in generated)
    assert min(expected) >= 10  # each site shows a number, not "<10"
    start_worker(",".join(site_queue(s.key) for s in sources))

    watcher = Watcher()
    with chromium() as browser:
        # (a) The researcher.
        context, page = new_page(browser, watcher)
        page.goto(f"{live_server.url}/accounts/login/")
        page.screenshot(path=screenshots / "journey-a1-login.png", full_page=True)
        sign_in(page, live_server.url, researcher.username)
        page.screenshot(path=screenshots / "journey-a2-home.png", full_page=True)
        page.get_by_role("link", name="Cohorts", exact=True).first.click()
        page.get_by_role("link", name="New definition").first.click()
        page.get_by_role("heading", name="New cohort definition").wait_for()
        page.locator("#builder-name").fill("Diabetes on metformin")
        page.locator("#builder-project").select_option(value=str(project.pk))

        page.locator("#cs0-name").fill("Diabetes")
        page.locator("#cs0-q").fill("diabetes")
        page.locator("#cs0-go").click()
        page.get_by_role("button", name=f"Add Type 2 diabetes mellitus ({T2DM})", exact=True).click()
        page.locator("[data-block=concept-set-0] .builder-items").get_by_text(str(T2DM), exact=True).wait_for()
        page.get_by_role("button", name="Add a concept set").click()
        page.locator("#cs1-name").fill("Metformin")
        page.locator("#cs1-byid").fill(str(METFORMIN))
        page.locator("#cs1-add").click()
        page.locator("[data-block=concept-set-1] .builder-items").get_by_text(str(METFORMIN), exact=True).wait_for()

        page.get_by_role("button", name="Add an inclusion rule").click()
        page.locator("#rule0-name").fill("Metformin in the year before")
        page.locator("#rule0-addc").click()
        page.locator("#rule0-k0-c-domain").select_option("DrugExposure")
        page.locator("#rule0-k0-c-set").select_option("1")
        page.get_by_role("button", name="Add an inclusion rule").click()
        page.locator("#rule1-name").fill("Diabetes recorded in the year before")
        page.locator("#rule1-addc").click()  # a condition of the first concept set, in the 365 days before
        page.locator("[data-sentence=rule-1]").filter(has_text="a condition of “Diabetes”").wait_for()
        page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()
        page.screenshot(path=screenshots / "journey-a3-builder.png", full_page=True)

        page.get_by_role("button", name="Count", exact=True).click()
        page.locator("[data-field=save-status]").filter(has_text="Saved as version 1.").wait_for()
        page.locator("[data-field=count-state]").filter(has_text="finished").wait_for()
        site_rows = [row.locator("td").all_inner_texts() for row in page.locator("#builder-sites tbody tr").all()]
        builder_total = page.locator("[data-field=total]").inner_text()
        page.screenshot(path=screenshots / "journey-a4-counted.png", full_page=True)
        page.locator("#builder-note").fill("two rules, counted on two sites")
        page.get_by_role("button", name="Save version").click()
        page.locator("[data-field=save-status]").filter(has_text="Saved as version 2.").wait_for()

        page.locator("[data-field=result-link]").click()
        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for()
        page.screenshot(path=screenshots / "journey-a5-count-result.png", full_page=True)

        # Attrition and demographics: asked from the definition page, on both sites.
        page.get_by_role("link", name="Diabetes on metformin").click()
        page.get_by_role("heading", name="Diabetes on metformin", level=1).wait_for()
        for source in sources:
            page.get_by_label(f"{source.name} ({source.key})").check()
        page.get_by_role("button", name="Characterization", exact=True).click()
        page.locator("#run [data-field=state]").filter(has_text="finished").wait_for()
        page.locator("#attrition-chart svg.main-svg").first.wait_for()
        page.locator("#pyramid-chart svg.main-svg").first.wait_for()
        # The attrition shows one site at a time (all sites together first): each site's rule rows, read as
        # (site, step, rule, persons) after the initial row (step 0).
        attrition_rows = []
        for source in sources:
            page.locator("#attrition-site").select_option(value=source.key)
            page.locator("#attrition table.attrition caption", has_text=source.key).wait_for()
            for r in page.locator("[data-table=attrition] tbody tr").all():
                step, rule_name, persons, *_ = r.locator("td").all_inner_texts()
                if step != "0":
                    attrition_rows.append([source.key, step, rule_name, persons])
        pyramid_rows = page.locator("[data-table=age_pyramid] tbody tr").count()
        # Both sites answered: the characterization shows them merged (the first view), whichever answered first.
        characterization_view = page.locator("#demographics-site").input_value()
        result_sites = [r.locator("td").all_inner_texts() for r in page.locator("#sites tbody tr").all()]
        page.screenshot(path=screenshots / "journey-a6-demographics.png", full_page=True)

        page.get_by_role("link", name="Diabetes on metformin").click()
        page.get_by_label("Share with a project").select_option(label="Diabetes on metformin")
        page.get_by_role("button", name="Share with the project").click()
        page.locator(".messages li").filter(has_text="Shared with the members").wait_for()
        page.screenshot(path=screenshots / "journey-a7-shared.png", full_page=True)
        context.close()

        # (b) The partner.
        context, page = new_page(browser, watcher)
        sign_in(page, live_server.url, partner.username)
        partner_row = page.locator("#partner-cohorts tbody tr").filter(has_text="Diabetes on metformin")
        partner_row.wait_for()
        partner_cell = partner_row.locator("td").nth(2)
        partner_count = partner_cell.locator("a").inner_text().strip()
        partner_rule = partner_cell.locator(".hint").inner_text().strip()
        page.screenshot(path=screenshots / "journey-b1-partner-home.png", full_page=True)
        context.close()

        # (c) The admin: password, then the authenticator code; approves the newcomer.
        context, page = new_page(browser, watcher)
        sign_in(page, live_server.url, admin.username)
        page.locator("input[name=code]").fill(totp_code(secret))
        page.get_by_role("button", name="Sign In", exact=True).click()
        page.wait_for_load_state()
        page.goto(f"{live_server.url}/approvals/")
        row = page.locator("tr").filter(has_text="newcomer")
        row.locator("select[name=organisation]").select_option(label="Newcomer Hospital")
        row.locator("select[name=role]").select_option("researcher")
        page.screenshot(path=screenshots / "journey-c1-approvals.png", full_page=True)
        row.get_by_role("button", name="Approve").click()
        page.wait_for_load_state()
        page.locator("tr").filter(has_text="newcomer").filter(has_text="Approved").first.wait_for()
        context.close()

        context, page = new_page(browser, watcher)
        sign_in(page, live_server.url, "newcomer", FACTORY_PASSWORD)
        page.get_by_role("heading", name=re.compile("Welcome")).wait_for()
        newcomer_home = page.url
        page.screenshot(path=screenshots / "journey-c2-newcomer-home.png", full_page=True)
        context.close()

    assert not watcher.errors, watcher.errors
    assert not watcher.failed, watcher.failed
    # (a) two sites, each with its own number, and their total.
    shown = {cells[0]: (cells[1], cells[2]) for cells in site_rows}
    assert shown == {f"{s.name} ({s.key})": ("succeeded", f"{n:,}") for s, n in zip(sources, expected, strict=True)}, (
        site_rows
    )
    assert builder_total == f"{expected_total:,}"
    assert sorted(cells[3] for cells in result_sites) == sorted(f"{n:,}" for n in expected)
    # The funnel's table: per site one row per rule, in order; the last row of each site is the cohort.
    assert [cells[2] for cells in attrition_rows] == [
        "Metformin in the year before",
        "Diabetes recorded in the year before",
    ] * 2, attrition_rows
    last_steps = {cells[0]: cells[3] for cells in attrition_rows}  # the last row of each site wins
    assert sorted(last_steps.values()) == sorted(f"{n:,}" for n in expected_steps), attrition_rows
    assert pyramid_rows > 0
    assert characterization_view == "merged"
    definition = CohortDefinition.objects.get(owner=researcher)
    assert [v.note for v in definition.versions.order_by("number")] == ["created", "two rules, counted on two sites"]
    assert [r["name"] for r in definition.latest_version().expression["InclusionRules"]] == [
        "Metformin in the year before",
        "Diabetes recorded in the year before",
    ]
    assert definition_shares(definition)["projects"] == [project]
    # (b) rounded for the partner: a multiple of ten (or "<10"), never the exact total unless it is one.
    assert ROUNDED.match(partner_count), partner_count
    assert partner_rule == "±3, <10 hidden, rounded to 10"  # the rule beside the number
    assert abs(int(partner_count.replace(",", "")) - truth) <= 10 or partner_count == "<10"
    # (c) the newcomer is in, with the organisation and role the admin chose.
    newcomer = User.objects.get(pk=newcomer.pk)
    assert newcomer.status == AccountStatus.APPROVED
    assert (newcomer.organisation, newcomer.role) == (newcomer_organisation, Role.RESEARCHER)
    assert newcomer_home.rstrip("/") == live_server.url
