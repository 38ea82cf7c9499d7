"""TOTP is required of data stewards and admins."""

from __future__ import annotations

import time

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import Client

from accounts.choices import Role
from accounts.tests.factories import PASSWORD, UserFactory, enroll_totp
from audit.models import AuditEvent


def _code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_steward_without_totp_is_sent_to_set_it_up_before_anything_else(hospital) -> None:
    steward = UserFactory(username="newsteward", role=Role.STEWARD, organisation=hospital)
    client = Client()
    assert client.post("/accounts/login/", {"login": "newsteward", "password": PASSWORD}).status_code == 302
    for path in ["/", "/projects/", "/approvals/", "/audit/", "/admin/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.url == "/accounts/2fa/totp/activate/", path

    # The password typed at sign-in is enough to set up the first authenticator: it is not asked twice.
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    response = client.post("/accounts/2fa/totp/activate/", {"code": _code(secret)})
    assert response.status_code == 302
    # The set-up ends on the recovery codes, which lead back to the portal.
    codes = client.get(response.url)
    assert codes.status_code == 200
    assert 'href="/"' in codes.content.decode() and "continue to the portal" in codes.content.decode()
    assert Authenticator.objects.filter(user=steward, type=Authenticator.Type.TOTP).exists()
    assert client.get("/approvals/").status_code == 200
    assert client.get("/audit/").status_code == 200


def test_a_wrong_code_does_not_enrol(hospital) -> None:
    UserFactory(username="newadmin", role=Role.ADMIN, organisation=hospital)
    client = Client()
    client.post("/accounts/login/", {"login": "newadmin", "password": PASSWORD})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert client.get("/").url == "/accounts/2fa/totp/activate/"


def test_enrolled_steward_signs_in_with_password_and_code(hospital) -> None:
    steward = UserFactory(username="stew2", role=Role.STEWARD, organisation=hospital)
    secret = enroll_totp(steward)
    client = Client()
    response = client.post("/accounts/login/", {"login": "stew2", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == "/accounts/2fa/authenticate/"
    assert client.get("/projects/").status_code == 302  # not signed in before the code
    response = client.post("/accounts/2fa/authenticate/", {"code": _code(secret)})
    assert response.status_code == 302
    assert client.get("/projects/").status_code == 200
    assert AuditEvent.objects.filter(action="login", actor=steward).exists()


def test_the_admin_site_login_goes_through_the_same_door(admin) -> None:
    response = Client().get("/admin/login/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_researchers_are_not_forced_to_use_totp(alice) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/projects/").status_code == 200


def test_later_security_changes_still_ask_for_the_password_again(hospital) -> None:
    steward = UserFactory(username="stew3", role=Role.STEWARD, organisation=hospital)
    secret = enroll_totp(steward)
    client = Client()
    client.post("/accounts/login/", {"login": "stew3", "password": PASSWORD})
    client.post("/accounts/2fa/authenticate/", {"code": _code(secret)})
    # New recovery codes or removing the authenticator: allauth asks for the password (or a code) again.
    response = client.get("/accounts/2fa/recovery-codes/generate/")
    assert response.status_code == 302 and "reauthenticate" in response.url


def test_the_first_authenticator_needs_the_password_again_once_the_sign_in_is_old(hospital, settings) -> None:
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 0
    UserFactory(username="stew4", role=Role.STEWARD, organisation=hospital)
    client = Client()
    client.post("/accounts/login/", {"login": "stew4", "password": PASSWORD})
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 302 and response.url.startswith("/accounts/reauthenticate/")
