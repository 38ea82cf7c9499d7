"""A Korean browser (Accept-Language ko) shows every role the portal in Korean: a researcher, a pharma partner, a
data steward and an admin sign in through the Korean sign-in page and walk their main pages in Chromium at 1400 px.

On every page, the portal's own words — the navigation, headings, table headers, labels, buttons and term lists —
must read in Korean: each holds Hangul or nothing but numbers, codes and data, and no English word is left once
the data the test set up (names of people, projects, cohorts, sites) and a short list of names that stay as they
are (Soyang, CSV, JSON, ATLAS, IRB, …) are taken out. Each page is screenshotted into var/screenshots/ko-*.png,
and no page may log a console error or answer 4xx/5xx.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.urls import reverse

from accounts.tests.factories import PASSWORD, enroll_totp
from tests.world import build_world

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 30_000
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Names and abbreviations that stay as they are in a Korean hospital's software.
KEPT = {
    "Soyang", "CSV", "JSON", "ATLAS", "IRB", "API", "CDM", "OMOP", "DuckDB", "PostgreSQL", "Parquet", "PDF", "PNG",
    "JPEG", "MB", "IP", "ID", "Token", "Authorization", "secret", "Redoc", "Swagger", "UI", "Export", "TOTP",
}  # fmt: skip
# What the checked elements are: the words of the page, not its data (select options, code and inputs are left
# out; the signed-in person's name in the top bar is data).
CHROME = "nav a, nav button, nav label, h1, h2, h3, th, label, button, dt, legend, summary, caption, .tagline, footer"
COLLECT_JS = """(selector) => Array.from(document.querySelectorAll(selector))
  .filter((el) => !el.closest('select, code, textarea, .who') && el.offsetParent !== null)
  .map((el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('select, code, textarea, .who').forEach((inner) => inner.remove());
    return copy.textContent.replace(/\\s+/g, ' ').trim();
  })
  .filter((text) => text)"""


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def english_left(texts: list[str], data: list[str]) -> list[str]:
    """The texts that still hold an English word once the data and the kept names are taken out."""
    left = []
    for text in texts:
        rest = text
        for value in sorted(data, key=len, reverse=True):
            rest = rest.replace(value, " ")
        # snake_case words are identifiers (OMOP column names, audit action codes), the same in every language.
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z_'’]+", rest) if w not in KEPT and "_" not in w]
        if words:
            left.append(f"{text!r} ({' '.join(words)})")
    return left


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> Any:
    settings.SOYANG_DATASET_ROOT = tmp_path / "datasets"
    return build_world()


def test_every_role_reads_its_main_pages_in_korean(world: Any, live_server: Any, chromium: Any, screenshots: Path):
    P = world.P
    users = world.users
    # The data on the pages, in English on purpose: it must stay as it is, and is not the portal's words.
    data = [
        P["project"].title,
        world.Q["project"].title,
        P["definition"].name,
        P["concept_set"].name,
        *(concept_set["name"] for concept_set in P["definition"].latest_version().expression.get("ConceptSets", [])),
        P["source"].name,
        P["source"].key,
        *(user.username for user in users.values() if user is not None),
        *(str(user.organisation) for user in users.values() if user is not None and user.organisation),
        "erin",
    ]
    definition, request, review = P["definition"], P["dataset_request"], P["review"]
    pages = {
        "member": [
            ("home", "/"),
            ("definitions", reverse("cohorts:definition_list")),
            ("definition", reverse("cohorts:definition_detail", args=[definition.pk])),
            ("versions", reverse("cohorts:definition_versions", args=[definition.pk])),
            ("summary", reverse("cohorts:definition_summary", args=[definition.pk])),
            ("import", reverse("cohorts:definition_import")),
            ("projects", reverse("accounts:project_list")),
            ("project", reverse("accounts:project_detail", args=[P["project"].pk])),
            ("datasets", reverse("datasets:request_list")),
            ("tokens", reverse("accounts:tokens")),
            ("security", reverse("mfa_index")),
            ("count-set", f"{reverse('cohorts:run_set_new')}?definitions={definition.pk}"),
            ("set-counts", f"{reverse('cohorts:run_set_detail')}?requests={P['run'].pk}"),
        ],
        "partner": [
            ("home", "/"),
            ("definitions", reverse("cohorts:definition_list")),
            ("projects", reverse("accounts:project_list")),
            ("datasets", reverse("datasets:request_list")),
            ("dataset-request", reverse("datasets:request_detail", args=[request.pk])),
        ],
        "steward": [
            ("home", "/"),
            ("approvals", reverse("accounts:approvals")),
            ("projects", reverse("accounts:project_list")),
            ("project", reverse("accounts:project_detail", args=[P["project"].pk])),
            ("datasets", reverse("datasets:request_list")),
            ("review", reverse("datasets:review", args=[review.pk])),
            ("grants", reverse("disclosure:grant_list")),
            ("audit", reverse("audit:event_list")),
            ("security", reverse("mfa_index")),
        ],
        "admin": [
            ("home", "/"),
            ("approvals", reverse("accounts:approvals")),
            ("projects", reverse("accounts:project_list")),
            ("grants", reverse("disclosure:grant_list")),
            ("audit", reverse("audit:event_list")),
        ],
    }
    # The world enrolled the steward's and the admin's authenticator apps; enrol them again to know the secrets.
    Authenticator.objects.filter(user__in=[users["steward"], users["admin"]]).delete()
    secrets = {role: enroll_totp(users[role]) for role in ("steward", "admin")}
    problems: list[str] = []
    errors: list[str] = []
    failed: list[str] = []
    base = live_server.url
    with chromium() as browser:
        for role, walk in pages.items():
            context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR")
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda m, p=page: errors.append(f"{p.url}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e, p=page: errors.append(f"{p.url}: uncaught {e}"))

            # The sign-in page itself is Korean: it is found by its Korean labels.
            page.goto(f"{base}/accounts/login/")
            page.get_by_label("사용자 이름 또는 이메일").fill(users[role].username)
            page.get_by_label("비밀번호").fill(PASSWORD)
            page.locator("main form button[type=submit]").first.click()
            page.wait_for_load_state()
            if role in secrets:
                page.locator("input[name=code]").fill(totp_code(secrets[role]))
                page.locator("main form button[type=submit]").first.click()
                page.wait_for_load_state()
            assert page.locator("nav .who").count() == 1, f"{role} is not signed in: {page.url}"

            for name, path in walk:
                page.goto(f"{base}{path}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(screenshots / f"ko-{role}-{name}.png"), full_page=True)
                assert page.locator("html").get_attribute("lang") == "ko", path
                nav = " ".join(page.evaluate(COLLECT_JS, "nav a, nav button"))
                heading = " ".join(page.evaluate(COLLECT_JS, "h1"))
                if not HANGUL.search(nav):
                    problems.append(f"{role} {path}: the navigation is not Korean: {nav!r}")
                if not HANGUL.search(heading) and not any(value in heading for value in data):
                    problems.append(f"{role} {path}: the heading is not Korean: {heading!r}")
                problems.extend(
                    f"{role} {path}: {text}" for text in english_left(page.evaluate(COLLECT_JS, CHROME), data)
                )
            context.close()
    assert not problems, "English left on Korean pages:\n" + "\n".join(problems)
    assert not errors, errors
    assert not failed, failed
