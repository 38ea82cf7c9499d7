"""Personal API tokens: made in the browser (secret shown once, only its hash kept), listed, used, revoked; refused
once expired or revoked, or when the account is not approved; every refusal a 401 in the error shape."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.choices import AccountStatus
from accounts.models import ApiToken
from accounts.tests.factories import UserFactory
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db
ME = "/api/v1/tokens/"


def _client(secret: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {secret}")
    return client


def _assert_refused(response, status: int = 401) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] in {"authentication_failed", "not_authenticated"}
    assert error["message"]
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_a_token_made_in_the_browser_shows_its_secret_once_and_stores_only_its_hash() -> None:
    user = UserFactory(username="bob")
    browser = Client()
    browser.force_login(user)
    response = browser.post(reverse("accounts:tokens"), {"name": "R notebook", "days": "30"})
    assert response.status_code == 200
    secret = response.context["created"].secret
    assert secret.startswith("sy_") and secret in response.content.decode()
    token = ApiToken.objects.get(user=user)
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {token.name, token.prefix, token.secret_hash}
    # The list page, reloaded, shows the token but never its secret again.
    page = browser.get(reverse("accounts:tokens")).content.decode()
    assert "R notebook" in page and secret not in page
    assert AuditEvent.objects.filter(action="api_token_create", actor=user).count() == 1
    # And the secret works.
    assert _client(secret).get(ME).json()["results"][0]["name"] == "R notebook"


def test_a_token_authenticates_with_token_or_bearer_and_records_its_last_use() -> None:
    user = UserFactory(username="bob")
    new = token_create(user=user, name="script", days=1)
    assert new.token.last_used_at is None
    assert _client(new.secret).get(ME).status_code == 200
    assert _client(new.secret, "Bearer").get(ME).status_code == 200
    new.token.refresh_from_db()
    assert new.token.last_used_at is not None


def test_the_session_makes_a_token_through_the_api_but_a_token_cannot_make_another() -> None:
    user = UserFactory(username="bob")
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    # Session authentication enforces CSRF: without the token the write is refused.
    refused = browser.post(ME, {"name": "x", "days": 7}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    session = APIClient()
    session.force_login(user)
    made = session.post(ME, {"name": "from the session", "days": 7}, format="json")
    assert made.status_code == 201
    secret = made.json()["secret"]
    again = _client(secret).post(ME, {"name": "from a token", "days": 7}, format="json")
    assert again.status_code == 403
    assert again.json()["error"]["code"] == "permission_denied"
    assert ApiToken.objects.filter(user=user).count() == 1


def test_a_revoked_token_is_refused_and_revoking_is_audited() -> None:
    user = UserFactory(username="bob")
    new = token_create(user=user, name="script", days=30)
    client = _client(new.secret)
    assert client.delete(f"{ME}{new.token.pk}/").status_code == 204
    _assert_refused(client.get(ME))
    new.token.refresh_from_db()
    assert new.token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token_revoke", object_id=str(new.token.pk)).count() == 1


def test_the_browser_page_revokes_ones_own_token_only() -> None:
    bob, dave = UserFactory(username="bob"), UserFactory(username="dave")
    daves = token_create(user=dave, name="dave's", days=30)
    browser = Client()
    browser.force_login(bob)
    assert browser.post(reverse("accounts:token_revoke", args=[daves.token.pk])).status_code == 404
    assert _client(daves.secret).get(ME).status_code == 200
    bobs = token_create(user=bob, name="bob's", days=30)
    assert browser.post(reverse("accounts:token_revoke", args=[bobs.token.pk])).status_code == 302
    _assert_refused(_client(bobs.secret).get(ME))


def test_an_expired_token_is_refused() -> None:
    user = UserFactory(username="bob")
    new = token_create(user=user, name="script", days=1)
    ApiToken.objects.filter(pk=new.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_refused(_client(new.secret).get(ME))


@pytest.mark.parametrize("status", [AccountStatus.PENDING, AccountStatus.SUSPENDED, AccountStatus.REJECTED])
def test_the_token_of_an_account_no_longer_approved_is_refused(status: str) -> None:
    user = UserFactory(username="bob")
    new = token_create(user=user, name="script", days=30)
    user.status = status
    user.save(update_fields=["status"])
    _assert_refused(_client(new.secret).get(ME))


def test_a_pending_account_cannot_make_a_token() -> None:
    user = UserFactory(username="pending", status=AccountStatus.PENDING)
    with pytest.raises(Exception, match="not approved"):
        token_create(user=user, name="script", days=30)


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Token sy_unknown", "Bearer sy_" + "x" * 43, "Token not-a-soyang-token", "Token ☃"],
)
def test_malformed_or_unknown_tokens_get_401_in_the_error_shape(header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))
    _assert_refused(client.get(ME))


def test_without_credentials_the_api_answers_401_with_the_challenge() -> None:
    response = APIClient().get(ME)
    _assert_refused(response)
    assert response.json()["error"]["code"] == "not_authenticated"


def test_token_lifetime_and_name_are_checked() -> None:
    user = UserFactory(username="bob")
    session = APIClient()
    session.force_login(user)
    for body in ({"name": "", "days": 5}, {"name": "x", "days": 0}, {"name": "x", "days": 10_000}, {"name": "x" * 101}):
        response = session.post(ME, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["fields"]
    assert not ApiToken.objects.exists()


def test_nobody_lists_anybody_elses_tokens_not_even_an_admin() -> None:
    dave = UserFactory(username="dave")
    token_create(user=dave, name="dave's", days=30)
    admin = UserFactory(username="admin", role="admin", is_staff=True, is_superuser=True)
    mine = token_create(user=admin, name="admin's", days=30)
    names = [t["name"] for t in _client(mine.secret).get(ME).json()["results"]]
    assert names == ["admin's"]
