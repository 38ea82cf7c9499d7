"""Stewards and admins act through the API only with TOTP enrolled, as on the pages: a token (or a session) of
such an account without it is refused with 403 in the API's error shape, saying what to do."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.choices import MembershipStatus, Role
from accounts.models import ApiToken, User
from accounts.services import membership_request
from accounts.tests.factories import UserFactory, enroll_totp


def _token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='script', days=1).secret}")
    return client


def _assert_mfa_refusal(response) -> None:
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "mfa_required"
    assert "authenticator app" in error["message"]


def test_a_steward_without_totp_cannot_approve_a_membership_with_a_token(project, bob, hospital) -> None:
    steward = UserFactory(username="newsteward", role=Role.STEWARD, organisation=hospital)
    membership = membership_request(project=project, user=bob)
    client = _token_client(steward)

    _assert_mfa_refusal(client.post(f"/api/v1/projects/{project.pk}/memberships/{membership.pk}/approve/"))
    membership.refresh_from_db()
    assert membership.steward_approved_by is None and membership.status == MembershipStatus.REQUESTED
    _assert_mfa_refusal(client.get("/api/v1/audit-events/"))
    _assert_mfa_refusal(client.get("/api/v1/accounts/pending/"))

    enroll_totp(steward)
    assert client.post(f"/api/v1/projects/{project.pk}/memberships/{membership.pk}/approve/").status_code == 200
    membership.refresh_from_db()
    assert membership.steward_approved_by == steward


def test_a_token_that_outlived_a_promotion_is_refused_until_totp_is_enrolled(charlie) -> None:
    # Even a token that escaped revocation (made before the role was changed straight in the database) gets
    # nothing: the second factor is asked of the account, on every call.
    client = _token_client(charlie)
    assert client.get("/api/v1/projects/").status_code == 200
    User.objects.filter(pk=charlie.pk).update(role=Role.ADMIN)
    assert ApiToken.objects.filter(user=charlie, revoked_at__isnull=True).exists()
    _assert_mfa_refusal(client.get("/api/v1/projects/"))


def test_a_browser_session_of_a_steward_without_totp_gets_the_api_refusal_not_a_page(hospital) -> None:
    steward = UserFactory(username="newsteward", role=Role.STEWARD, organisation=hospital)
    client = Client()
    client.force_login(steward)
    _assert_mfa_refusal(client.get("/api/v1/projects/"))


def test_enrolled_stewards_and_researchers_use_the_api(steward, alice) -> None:
    assert _token_client(steward).get("/api/v1/audit-events/").status_code == 200
    assert _token_client(alice).get("/api/v1/projects/").status_code == 200


def test_a_steward_without_totp_may_still_list_and_revoke_its_own_tokens(hospital) -> None:
    steward = UserFactory(username="newsteward", role=Role.STEWARD, organisation=hospital)
    client = _token_client(steward)
    tokens = client.get("/api/v1/tokens/").json()["results"]
    assert [token["name"] for token in tokens] == ["script"]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}/").status_code == 204
