"""The login page, the home page behind it, and who may sign in."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.choices import AccountStatus, Role
from accounts.models import User
from accounts.services import account_create_approved, organisation_get_or_create

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(db) -> User:
    organisation = organisation_get_or_create(name="Test Hospital")
    return account_create_approved(
        username="alice", email="alice@example.org", password=PASSWORD, role=Role.RESEARCHER, organisation=organisation
    )


def test_anonymous_visitor_is_sent_to_the_login_page(client: Client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_is_served_with_a_csrf_protected_form(client: Client, db) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Sign in" in body
    assert "csrfmiddlewaretoken" in body
    assert response["X-Frame-Options"] == "DENY"


def test_approved_user_signs_in_and_sees_the_sites(client: Client, alice: User) -> None:
    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert b"Sites" in response.content
    assert response.context["user"] == alice


@pytest.mark.parametrize("status", [AccountStatus.PENDING, AccountStatus.REJECTED, AccountStatus.SUSPENDED])
def test_account_that_is_not_approved_cannot_sign_in(client: Client, alice: User, status: str) -> None:
    alice.status = status
    alice.save(update_fields=["status"])
    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated


def test_health_reports_the_portal_database(client: Client, db) -> None:
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up"}
