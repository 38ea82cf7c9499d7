"""Authentication: only approved, active accounts may sign in, and never while locked out."""

from __future__ import annotations

from typing import Any

from allauth.account.auth_backends import AuthenticationBackend
from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest

from accounts.choices import AccountStatus


class ApprovedAccountBackend(AuthenticationBackend):
    """Pending, rejected and suspended accounts cannot sign in, whatever their password.

    It extends allauth's backend so that an e-mail address works as the login too. When the password is right
    but the account is not approved, allauth hands the user to ``SoyangAccountAdapter.pre_login``, which
    refuses the session and tells the person why (pending, rejected or suspended).
    """

    def user_can_authenticate(self, user: Any) -> bool:
        return super().user_can_authenticate(user) and getattr(user, "status", None) == AccountStatus.APPROVED


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, first in AUTHENTICATION_BACKENDS.

    A call without a request (the test client's ``login``, a management command) does not come from the
    network, so there is nothing to throttle: it passes on to the next backend instead of failing.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ):  # noqa: E501
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_login_name(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The name django-axes counts failures against: the account's user name, also when the person typed the
    e-mail address, so the two spellings of one account share one failure count."""
    from accounts.models import User  # the settings import this module before the apps are ready

    credentials = credentials or {}
    raw = credentials.get("username") or credentials.get("email") or request.POST.get("login") or ""
    raw = str(raw).strip()
    if "@" in raw:
        user = User.objects.filter(email__iexact=raw).only("username").first()
        if user is not None:
            return user.username
    return raw.lower()
