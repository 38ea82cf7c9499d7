"""A data steward's first sign-in in Chromium, in English and in Korean: the password is typed once, the portal
asks for an authenticator before anything else, the set-up ends on the recovery codes, and those lead back to the
portal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

from accounts.choices import Role
from tests.browser.conftest import watch
from worker.tests.helpers import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

#: What the pages say, by language: the sign-in form's labels and buttons, and the way back to the portal.
WORDS = {
    "en": {"login": "User name or e-mail", "password": "Password", "sign_in": "Sign in", "back": "continue to"},
    "ko": {"login": "사용자 이름 또는 이메일", "password": "비밀번호", "sign_in": "로그인", "back": "포털로"},
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_new_steward_types_the_password_once_sets_up_totp_and_is_led_back(
    language: str, live_server: Any, chromium: Any, screenshots: Path
) -> None:
    steward = make_user(role=Role.STEWARD)
    words = WORDS[language]
    errors: list[str] = []
    failed: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale=language)
        context.set_extra_http_headers({"Accept-Language": language})
        page = context.new_page()
        watch(page, errors, failed)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label(words["login"]).fill(steward.username)
        page.get_by_label(words["password"], exact=True).fill(PASSWORD)
        page.get_by_role("button", name=words["sign_in"]).click()
        page.wait_for_load_state()
        # Straight to the authenticator set-up: no second password.
        assert page.url.endswith("/accounts/2fa/totp/activate/"), page.url
        assert page.locator("input[type=password]").count() == 0
        secret = page.locator("#authenticator_secret").input_value()
        page.locator("input[name=code]").fill(format_hotp_value(hotp_value(secret, int(time.time()) // 30)))
        page.screenshot(path=str(screenshots / f"first-sign-in-totp-{language}.png"), full_page=True)
        page.locator("form[action$='/accounts/2fa/totp/activate/'] button[type=submit]").click()
        page.wait_for_load_state()
        assert "/accounts/2fa/recovery-codes/" in page.url, page.url
        page.screenshot(path=str(screenshots / f"first-sign-in-recovery-codes-{language}.png"), full_page=True)
        back = page.locator("p.way-back a")
        assert words["back"] in back.inner_text()
        back.click()
        page.wait_for_load_state()
        assert page.url.rstrip("/") == live_server.url
        assert page.locator("main h1").count() == 1
        context.close()
    assert not errors, errors
    # The one refusal on the way is none: no 4xx or 5xx answer.
    assert not failed, failed
    assert Authenticator.objects.filter(user=steward, type=Authenticator.Type.TOTP).exists()
