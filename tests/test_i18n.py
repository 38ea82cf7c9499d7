"""Korean and English: the language comes from the switcher (Django's set_language) or Accept-Language; the
Korean catalogue is compiled from locale/ko/LC_MESSAGES/django.po by scripts/compile_messages.py (polib)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import polib
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils.translation import trans_real

from cohorts.definitions.services import definition_create
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from jobs.choices import JobState

PO_FILE = settings.BASE_DIR / "locale" / "ko" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\{\s*(\w+)\s*\}\}")


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue() -> None:
    """What `make messages` does, so the test also runs under plain pytest; then forget any catalogue already
    loaded by this process so the fresh .mo is read."""
    sys.path.insert(0, str(settings.BASE_DIR / "scripts"))
    try:
        from compile_messages import compile_all
    finally:
        sys.path.pop(0)
    compile_all()
    trans_real._translations = {}
    trans_real._default = None
    trans_real._active = trans_real.Local()


def client_for(user: Any, **headers: str) -> Client:
    client = Client(headers=headers)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_korean_browser_gets_korean_home_and_definitions_list(alice, project):
    definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    client = client_for(alice, accept_language="ko-KR,ko;q=0.9,en;q=0.5")
    home = client.get("/").content.decode()
    assert '<html lang="ko">' in home
    assert "환영합니다" in home and "내 프로젝트" in home and "코호트" in home
    listing = client.get(reverse("cohorts:definition_list")).content.decode()
    assert "<h1>코호트 정의</h1>" in listing
    assert "이름 또는 설명 검색" in listing and "최근 환자 수" in listing
    # The data itself is never translated.
    assert "Type 2 diabetes" in listing


@pytest.mark.django_db
def test_without_a_preference_the_portal_speaks_english(alice, project):
    body = client_for(alice).get(reverse("cohorts:definition_list")).content.decode()
    assert '<html lang="en">' in body and "<h1>Cohort definitions</h1>" in body


@pytest.mark.django_db
def test_the_language_switcher_keeps_korean_for_the_next_pages(alice, project):
    client = client_for(alice, accept_language="en")
    response = client.post(reverse("set_language"), {"language": "ko", "next": reverse("cohorts:definition_list")})
    assert response.status_code == 302
    assert response["Location"] == reverse("cohorts:definition_list")
    assert "<h1>코호트 정의</h1>" in client.get(response["Location"]).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "<h1>Cohort definitions</h1>" in client.get(reverse("cohorts:definition_list")).content.decode()


@pytest.mark.django_db
def test_every_page_offers_the_switcher_with_both_languages(alice):
    body = client_for(alice).get("/").content.decode()
    assert f'action="{reverse("set_language")}"' in body
    assert '<option value="ko" lang="ko"' in body and '<option value="en" lang="en"' in body
    assert 'href="#main"' in body and 'id="main"' in body  # the skip link and its target


def test_korean_translations_keep_every_placeholder_of_the_english_text():
    catalogue = polib.pofile(str(PO_FILE))
    assert not catalogue.fuzzy_entries()
    for entry in catalogue.translated_entries():
        wanted = sorted(PLACEHOLDER.findall(entry.msgid))
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            assert sorted(PLACEHOLDER.findall(text)) == wanted, entry.msgid


def test_the_main_screens_are_translated_to_korean():
    translated = {entry.msgid for entry in polib.pofile(str(PO_FILE)).translated_entries()}
    for msgid in (
        "Cohort definitions",
        "Versions",
        "Compare",
        "Share",
        "Duplicate",
        "Approval queues",
        "Sign out",
        "Demographics at the index date",
        "User name or e-mail",
        "Accounts waiting for approval",
        "My dataset requests",
        "Exact-count grants",
        "Grant exact counts",
    ):
        assert msgid in translated, msgid


@pytest.mark.django_db
def test_a_korean_user_sees_the_run_result_page_in_korean(alice, project, source):
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    version = definition.latest_version()
    run_request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=alice
    )
    run_request.runs.add(
        CohortRun.objects.create(
            version=version,
            source=source,
            kind=RunKind.COUNT,
            cache_key="i18n-run",
            source_fingerprint="f" * 64,
            requested_by=alice,
            state=JobState.RUNNING,
        )
    )
    client = client_for(alice, accept_language="ko")
    body = client.get(reverse("cohorts:run_detail", args=[run_request.pk])).content.decode()
    for korean in (
        "단계별 감소",
        "기준일의 인구통계",
        "개인정보 보호 규칙",
        "1개 기관 중 0개 응답",
        "환자 수 내려받기 (CSV)",
    ):
        assert korean in body, korean
    assert "Demographics at the index date" not in body and "Download the counts" not in body
    assert "Type 2 diabetes" in body and 'data-field="sites-answered"' in body


@pytest.mark.django_db
def test_a_korean_browser_gets_the_sign_in_and_sign_up_pages_in_korean():
    login = Client(headers={"accept_language": "ko"}).get(reverse("login")).content.decode()
    assert "<h1>로그인</h1>" in login and "사용자 이름 또는 이메일" in login and "비밀번호를 잊으셨습니까?" in login
    assert f'href="{reverse("account_signup")}"' in login  # the link survives the translation
    signup = Client(headers={"accept_language": "ko"}).get(reverse("account_signup")).content.decode()
    assert "<h1>가입</h1>" in signup and "이미 계정이 있으십니까?" in signup


@pytest.mark.django_db
def test_a_korean_steward_sees_the_approvals_page_in_korean(steward):
    body = client_for(steward, accept_language="ko").get(reverse("accounts:approvals")).content.decode()
    assert "<h1>승인</h1>" in body and "승인 대기 중인 계정" in body and "프로젝트 참여 요청" in body
    assert "Accounts waiting for approval" not in body


@pytest.mark.django_db
def test_the_javascript_catalogue_in_korean_translates_the_run_page_and_builder_text():
    korean = Client(headers={"accept_language": "ko"}).get(reverse("javascript-catalog"))
    assert korean.status_code == 200
    assert korean["Content-Type"].startswith("text/javascript")
    body = korean.content.decode()
    # The catalogue is a JSON object (non-ASCII escaped) inside the script Django generates.
    catalogue = json.loads(re.search(r"const newcatalog = (\{.*?\n  \});", body, re.S).group(1))
    for english, translated in (
        ("All sites (merged)", "모든 기관 (합산)"),
        ("%(answered)s of %(sites)s site(s) answered", "%(sites)s개 기관 중 %(answered)s개 응답"),
        ("Age group by gender", "성별 연령대"),
        ("Add an inclusion rule", "포함 규칙 추가"),
        ("Saved as version %s.", "버전 %s(으)로 저장했습니다."),
    ):
        assert catalogue[english] == translated, english
    english_body = Client(headers={"accept_language": "en"}).get(reverse("javascript-catalog")).content.decode()
    assert "All sites (merged)" not in english_body  # English needs no catalogue: the scripts' text is the source


def test_every_string_the_scripts_translate_has_korean():
    po = {entry.msgid: entry.msgstr for entry in polib.pofile(str(PO_FILE.with_name("djangojs.po")))}
    scripts = [settings.BASE_DIR / "static" / "js" / name for name in ("run.js", "cohort_builder.js")]
    wrapped = {m for path in scripts for m in re.findall(r'\b_\("((?:[^"\\]|\\.)*)"\)', path.read_text())}
    assert len(wrapped) > 100
    missing = sorted(m.replace("\\'", "'") for m in wrapped if not po.get(m.replace("\\'", "'")))
    assert not missing, missing
