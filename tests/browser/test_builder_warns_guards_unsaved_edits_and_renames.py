"""The builder in a real browser prevents mistakes: a criterion whose domain does not match its concepts is warned of
beside its block and in the summary (and still saves and counts); leaving with unsaved edits asks first (a link, a
reload), counting the draft does not clear that, discarding and saving do; the owner renames, re-describes and moves
the definition to another project of theirs without a new version. In English and in Korean, at 1400 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create
from cohorts.runs.services import site_queue
from tests.browser.conftest import sign_in, watch
from tests.browser.test_builder import expected_expression
from worker.tests.helpers import make_running_project, make_source, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000

WORDS = {
    "en": {
        "valid": "Valid.",
        "warning": "The drug exposure criterion uses the concept set “Type 2 diabetes”, whose concepts are Condition",
        "one_warning": "1 warning: see the list below.",
        "unsaved": "Unsaved changes.",
        "leave": "This definition has unsaved changes. Leave the page and lose them?",
        "back": "Back to the definition",
        "discard": "Discard changes",
        "discarded": "Changes discarded.",
        "save": "Save version",
        "renamed": "Saved the name, description and project; the criteria did not change, so there is no new version.",
        "counted_with_warnings": "Counted with 1 warning: the number may not be what you mean",
        "finished": "finished",
    },
    "ko": {
        "valid": "유효합니다.",
        "warning": "약물 노출 기준이 개념 집합 “Type 2 diabetes”을(를) 쓰지만, 이 집합의 개념은 Condition 도메인입니다",
        "one_warning": "경고 1개: 아래 목록을 보세요.",
        "unsaved": "저장하지 않은 변경 사항이 있습니다.",
        "leave": "이 정의에 저장하지 않은 변경 사항이 있습니다. 페이지를 떠나면 변경 사항이 사라집니다. 떠날까요?",
        "back": "정의로 돌아가기",
        "discard": "변경 사항 버리기",
        "discarded": "변경 사항을 버렸습니다.",
        "save": "버전 저장",
        "renamed": "이름, 설명, 프로젝트를 저장했습니다. 기준은 바뀌지 않아 새 버전은 없습니다.",
        "counted_with_warnings": "경고 1개가 있는 채로 셌습니다",
        "finished": "",  # the run state's word is another page's (run states); any state that finished will do
    },
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_builder_warns_guards_unsaved_edits_and_renames_without_a_new_version(
    live_server: Any, start_worker: Any, demo_site: Any, chromium: Any, screenshots: Path, language: str
) -> None:
    words = WORDS[language]
    source = make_source(demo_site)
    researcher = make_user()
    first = make_running_project(investigator=researcher, sources=[source], title="Diabetes", approval_number="IRB-D1")
    second = make_running_project(investigator=researcher, sources=[source], title="Kidney", approval_number="IRB-K1")
    definition = definition_create(
        owner=researcher, name="T2DM on metformin", expression=expected_expression(), project=first
    )
    start_worker(site_queue(source.key))

    errors: list[str] = []
    failed: list[str] = []
    dialogs: list[tuple[str, str]] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        context.set_extra_http_headers({"Accept-Language": language})
        edit_url = f"{live_server.url}/cohorts/{definition.pk}/edit/"
        page.goto(edit_url)
        validity = page.locator("[data-field=validity]")
        status = page.locator("[data-field=save-status]")
        validity.filter(has_text=words["valid"]).wait_for()
        assert page.locator(".builder-warnings li").count() == 0
        assert page.locator("#builder-name").input_value() == "T2DM on metformin"

        # A mistake: the entry event becomes a drug exposure of the set of conditions. Valid, with a warning beside
        # the entry block and in the summary by the Save button.
        page.locator("#entry0-domain").select_option("DrugExposure")
        entry_warning = page.locator("[data-warnings=entry] li")
        entry_warning.filter(has_text=words["warning"]).wait_for()
        validity.filter(has_text=words["one_warning"]).wait_for()
        summary = page.locator("[data-region=warning-summary]")
        assert summary.is_visible()
        assert summary.locator("li").count() == 1
        status.filter(has_text=words["unsaved"]).wait_for()
        page.locator("[data-block=entry]").screenshot(path=screenshots / f"builder-warning-{language}.png")
        page.screenshot(path=screenshots / f"builder-warning-page-{language}.png", full_page=True)

        # Counting the draft counts it (with its warning said again) and leaves the edits unsaved.
        page.locator("[data-action=count]").click()
        count_warning = page.locator("[data-field=count-warning]")
        count_warning.filter(has_text=words["counted_with_warnings"]).wait_for()
        if words["finished"]:
            page.locator("[data-field=count-state]").filter(has_text=words["finished"]).wait_for()
        assert status.inner_text() == words["unsaved"]

        # Leaving by a link asks first; answering "stay" keeps the page and its edits.
        def stay(dialog: Any) -> None:
            dialogs.append((dialog.type, dialog.message))
            dialog.dismiss()

        page.once("dialog", stay)
        page.get_by_role("link", name=words["back"]).click()
        page.wait_for_timeout(300)
        assert page.url == edit_url
        assert page.locator("#entry0-domain").input_value() == "DrugExposure"
        # A reload asks too (the browser's own question): "stay" again.
        page.once("dialog", stay)
        page.evaluate("window.setTimeout(function () { window.location.reload(); }, 0)")
        page.wait_for_timeout(1000)
        assert page.url == edit_url
        assert page.locator("#entry0-domain").input_value() == "DrugExposure"
        page.locator(".builder-save").screenshot(path=screenshots / f"builder-unsaved-{language}.png")

        # A second rule whose window starts 30 days after the index date and ends 10 days before it: warned of in
        # that rule's own block.
        page.locator("#rule-new").click()
        page.locator("#rule1-addc").click()
        page.locator("#rule1-k0-sw-start-mode").select_option("a")
        page.locator("#rule1-k0-sw-start-days").fill("30")
        page.locator("#rule1-k0-sw-start-days").dispatch_event("change")
        page.locator("#rule1-k0-sw-end-mode").select_option("b")
        page.locator("#rule1-k0-sw-end-days").fill("10")
        page.locator("#rule1-k0-sw-end-days").dispatch_event("change")
        page.locator("[data-warnings=rule-1] li[data-code=impossible-window]").wait_for()
        assert summary.locator("li").count() == 2
        page.locator("[data-block=rule-1]").screenshot(path=screenshots / f"builder-window-warning-{language}.png")

        # Discarding brings the saved definition back: no warning, nothing unsaved, leaving asks nothing.
        page.get_by_role("button", name=words["discard"]).click()
        status.filter(has_text=words["discarded"]).wait_for()
        assert page.locator("#entry0-domain").input_value() == "ConditionOccurrence"
        page.locator("[data-warnings=entry] li").first.wait_for(state="detached")
        assert page.get_by_role("button", name=words["discard"]).is_hidden()

        # Rename, re-describe and move to the other project: saved without a new version, the title follows.
        page.locator("#builder-name").fill("Metformin before type 2 diabetes")
        page.locator("#builder-description").fill("First diagnosis, with metformin in the year before.")
        page.locator("#builder-project").select_option(str(second.pk))
        status.filter(has_text=words["unsaved"]).wait_for()
        page.locator("[data-block=name]").screenshot(path=screenshots / f"builder-rename-{language}.png")
        page.get_by_role("button", name=words["save"]).click()
        status.filter(has_text=words["renamed"]).wait_for()
        page.locator("[data-field=title]").filter(has_text="Metformin before type 2 diabetes").wait_for()
        page.screenshot(path=screenshots / f"builder-renamed-{language}.png", full_page=True)
        # Saved: the link leaves without a question.
        page.get_by_role("link", name=words["back"]).click()
        page.wait_for_url(f"{live_server.url}/cohorts/{definition.pk}/")
        page.get_by_role("heading", name="Metformin before type 2 diabetes").first.wait_for()
        context.close()

    assert not errors, errors
    assert not failed, failed
    assert [d[0] for d in dialogs] == ["confirm", "beforeunload"]
    assert dialogs[0][1] == words["leave"]
    definition = CohortDefinition.objects.get(pk=definition.pk)
    assert (definition.name, definition.project, definition.description) == (
        "Metformin before type 2 diabetes",
        second,
        "First diagnosis, with metformin in the year before.",
    )
    assert [v.number for v in definition.versions.all()] == [1]
    event = AuditEvent.objects.get(action="definition_update")
    assert event.detail["changed"]["project"] == {"from": first.pk, "to": second.pk}


def test_a_new_definition_in_korean_reads_in_korean_and_warns_of_its_empty_concept_set(
    live_server: Any, demo_site: Any, chromium: Any, screenshots: Path
) -> None:
    source = make_source(demo_site)
    researcher = make_user()
    make_running_project(investigator=researcher, sources=[source], title="당뇨 연구", approval_number="IRB-KO1")

    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch(page, errors, failed)
        sign_in(page, live_server.url, researcher.username)
        context.set_extra_http_headers({"Accept-Language": "ko"})
        page.goto(f"{live_server.url}/cohorts/new/")
        page.get_by_role("heading", name="새 코호트 정의").wait_for()
        page.locator("[data-field=validity]").filter(has_text="유효합니다. 경고 1개").wait_for()
        warning = page.locator("[data-warnings=entry] li[data-code=empty-concept-set]")
        warning.filter(has_text="질환 기준이 쓰는 개념 집합 “진입 개념”에 아직 개념이 없습니다").wait_for()
        sentence = page.locator("[data-sentence=entry]").inner_text()
        headings = page.locator(".builder-block h2:visible").all_inner_texts()
        domain_options = page.locator("#entry0-domain option").all_inner_texts()
        page.screenshot(path=screenshots / "builder-new-ko.png", full_page=True)
        # Nothing typed yet: leaving asks nothing.
        page.get_by_role("link", name="코호트", exact=True).first.click()
        page.wait_for_url(f"{live_server.url}/cohorts/")
        context.close()

    assert not errors, errors
    assert not failed, failed
    assert headings == [
        "정의",
        "1. 개념 집합",
        "2. 진입 사건",
        "3. 포함 규칙",
        "4. 코호트 종료",
        "저장하고 환자 수 세기",
    ]
    assert sentence.startswith("다음 사건 중 가장 이른 사건에서 코호트에 들어갑니다")
    assert "질환" in domain_options and "약물 노출" in domain_options
