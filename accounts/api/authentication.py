"""Who is calling: a personal token (scripts) or the browser session (CSRF enforced)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.api.tokens import token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <secret>`` (``Bearer`` is accepted too). An unknown, expired or revoked token, or
    one of an account that is no longer approved, is refused with 401 — never silently treated as anonymous."""

    keywords = (b"token", b"bearer")

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Token <secret>'.")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("This token is not valid.") from None
        token = token_authenticate(secret=secret)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "This token is not valid: it is unknown, expired or revoked, or its account is not approved."
            )
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """The browser's session. DRF's session authentication already enforces CSRF on unsafe methods; the class is
    named here so that the settings say it, and so that its place after the token class is deliberate."""
