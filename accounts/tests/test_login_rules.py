"""Who may sign in, the lockout after repeated failures, and the audit trail of it all."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.choices import AccountStatus
from accounts.models import User
from accounts.services import account_suspend
from accounts.tests.factories import PASSWORD
from audit.models import AuditEvent


def _log_in(client: Client, login: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": login, "password": password})


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (AccountStatus.PENDING, "waiting for approval"),
        (AccountStatus.REJECTED, "rejected"),
        (AccountStatus.SUSPENDED, "suspended"),
    ],
)
def test_an_account_that_is_not_approved_is_told_why(charlie, status, words) -> None:
    User.objects.filter(pk=charlie.pk).update(status=status, status_reason="see your steward")
    response = _log_in(Client(), "charlie")
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated
    assert AuditEvent.objects.filter(action="login_refused", object_id=str(charlie.pk), outcome="denied").exists()


def test_a_wrong_password_does_not_reveal_the_account_status(charlie) -> None:
    User.objects.filter(pk=charlie.pk).update(status=AccountStatus.SUSPENDED)
    body = _log_in(Client(), "charlie", "wrong password entirely").content.decode()
    assert "suspended" not in body


def test_login_failed_login_and_logout_are_audited_with_the_ip(charlie) -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    _log_in(client, "charlie", "not the password")
    assert _log_in(client, "charlie").status_code == 302
    client.post("/accounts/logout/")
    failed = AuditEvent.objects.get(action="login_failed")
    assert (failed.ip_address, failed.outcome, failed.object_id) == ("10.1.2.3", "failure", str(charlie.pk))
    login = AuditEvent.objects.get(action="login")
    assert (login.actor, login.ip_address) == (charlie, "10.1.2.3")
    assert AuditEvent.objects.filter(action="logout", actor=charlie, ip_address="10.1.2.3").exists()
    assert "not the password" not in str(failed.detail)


def test_five_failures_lock_the_account_even_with_the_right_password(charlie) -> None:
    client = Client()
    for _ in range(5):
        response = _log_in(client, "charlie", "guess")
        assert not response.wsgi_request.user.is_authenticated
    response = _log_in(client, "charlie")
    assert response.status_code == 429
    assert "locked" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated
    assert AuditEvent.objects.filter(action="login_lockout").exists()
    # The lock is per account: from another address it holds too; another account is unaffected.
    assert _log_in(Client(REMOTE_ADDR="10.9.9.9"), "charlie").status_code == 429


def test_the_lock_counts_the_email_spelling_of_the_account_too(charlie) -> None:
    client = Client()
    for login in ["charlie", "charlie@example.org", "charlie", "CHARLIE@example.org", "charlie"]:
        _log_in(client, login, "guess")
    assert _log_in(client, "charlie@example.org").status_code == 429


def test_four_failures_then_the_right_password_sign_in(charlie) -> None:
    client = Client()
    for _ in range(4):
        _log_in(client, "charlie", "guess")
    assert _log_in(client, "charlie").status_code == 302


def test_a_suspended_account_loses_its_open_session(charlie, admin) -> None:
    client = Client()
    client.force_login(charlie)
    assert client.get("/projects/").status_code == 200
    account_suspend(user=charlie, reason="left the hospital", decided_by=admin)
    response = client.get("/projects/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")
    assert client.get("/projects/").url.startswith("/accounts/login/")
    assert AuditEvent.objects.filter(action="account_suspend", actor=admin).exists()


def test_sessions_idle_out(settings) -> None:
    # The idle timeout comes from SESSION_IDLE_SECONDS and is pushed forward on every request.
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.ACCOUNT_SESSION_REMEMBER is False
    assert settings.SESSION_COOKIE_AGE > 0
