"""A role change revokes the account's API tokens, whichever path makes it (the Django admin, the approval
service and its API), and the revocation is audited: no token made under one role acts under another."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.choices import AccountStatus, Role
from accounts.models import ApiToken, User
from accounts.tests.factories import admin_user_form
from audit.models import AuditEvent

ME = "/api/v1/tokens/"


def _token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def _admin_client(admin: User) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_making_a_researcher_steward_in_the_django_admin_revokes_their_tokens(admin, charlie) -> None:
    new = token_create(user=charlie, name="notebook", days=30)
    assert _token_client(new.secret).get(ME).status_code == 200

    url = reverse("admin:accounts_user_change", args=[charlie.pk])
    response = _admin_client(admin).post(url, admin_user_form(charlie, role=Role.STEWARD))
    assert response.status_code == 302, response.content.decode()[:2000]
    charlie.refresh_from_db()
    assert charlie.role == Role.STEWARD

    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is not None
    refused = _token_client(new.secret).get(ME)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    event = AuditEvent.objects.get(action="api_tokens_revoke_all", object_id=str(charlie.pk))
    assert event.actor == admin
    assert event.detail == {
        "reason": "role_change",
        "tokens": 1,
        "changed": ["role"],
        "role_before": "researcher",
        "role": "steward",
    }


def test_making_someone_superuser_in_the_django_admin_revokes_their_tokens_too(admin, charlie) -> None:
    new = token_create(user=charlie, name="notebook", days=30)
    url = reverse("admin:accounts_user_change", args=[charlie.pk])
    _admin_client(admin).post(url, admin_user_form(charlie, is_superuser="on"))
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is not None


def test_an_admin_change_that_keeps_the_role_keeps_the_tokens(admin, charlie) -> None:
    new = token_create(user=charlie, name="notebook", days=30)
    url = reverse("admin:accounts_user_change", args=[charlie.pk])
    response = _admin_client(admin).post(url, admin_user_form(charlie, first_name="Charles"))
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is None
    assert _token_client(new.secret).get(ME).status_code == 200
    assert not AuditEvent.objects.filter(action="api_tokens_revoke_all").exists()


def test_approving_an_account_through_the_api_with_a_new_role_revokes_its_old_tokens(admin, charlie) -> None:
    # An account that had tokens goes back to review (as after a suspension) and is approved with another role.
    new = token_create(user=charlie, name="notebook", days=30)
    User.objects.filter(pk=charlie.pk).update(status=AccountStatus.PENDING)
    admin_token = token_create(user=admin, name="admin script", days=1)
    response = _token_client(admin_token.secret).post(
        f"/api/v1/accounts/pending/{charlie.pk}/approve/",
        {"organisation": charlie.organisation.name, "role": Role.PARTNER},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is not None
    assert AuditEvent.objects.filter(action="api_tokens_revoke_all", actor=admin, object_id=str(charlie.pk)).exists()
