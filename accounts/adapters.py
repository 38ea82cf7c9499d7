"""How django-allauth's sign-up and login fit Soyang's approval rules."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.email_verification import (
    get_address_for_user,
    send_verification_email_to_address,
)
from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.internal.stagekit import clear_login
from allauth.account.models import EmailAddress
from allauth.core import context
from allauth.mfa.models import Authenticator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.choices import AccountStatus
from accounts.services import account_email_verified, account_signed_up, login_refused


class SoyangAccountAdapter(DefaultAccountAdapter):
    """Sign-up creates a pending account; only approved accounts get a session."""

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        # The model's default status is pending: a new account sees nothing until someone approves it.
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            account_signed_up(user=user, request=request)
        return user

    def confirm_email(self, request: HttpRequest, email_address: Any) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed:
            account_email_verified(user=email_address.user, request=request)
        return confirmed

    def pre_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse | None:
        # allauth hands over a user whose password was right even when our backend refused the account; this
        # is the one place that turns that into a clear answer instead of "wrong password". The password was
        # right, so saying why does not help anybody guess it; a locked-out account never gets this far.
        if getattr(user, "status", None) != AccountStatus.APPROVED:
            clear_login(request)
            if not EmailAddress.objects.filter(user=user, verified=True).exists():
                # Right after sign-up (or a login before verifying): the e-mail must be verified first. allauth
                # would send it in a later login stage, which an unapproved account never reaches.
                address = get_address_for_user(user)
                if address is not None:
                    send_verification_email_to_address(request, address, signup=bool(kwargs.get("signup")))
                return self.respond_email_verification_sent(request, user)
            login_refused(user=user, request=request)
            return render(request, "accounts/login_refused.html", {"refused": user}, status=200)
        return super().pre_login(request, user, **kwargs)

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        # A steward or admin signing in for the first time is sent straight to set up TOTP, and allauth would ask
        # for the password they typed a moment ago once more, then again to show the recovery codes just made.
        # Within the re-authentication window of a password sign-in, setting up the first authenticator and
        # seeing the codes it came with need no second password. Once the account had an authenticator before
        # this sign-in, every security change (another authenticator, removing one, new codes) still asks for it.
        request = context.request
        if app == "allauth.mfa" and request is not None and _setting_up_after_a_fresh_sign_in(request):
            return False
        return super().is_reauthentication_required(app=app, **kwargs)


def _setting_up_after_a_fresh_sign_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    window = account_settings.REAUTHENTICATION_TIMEOUT
    signed_in = [
        float(record.get("at", 0))
        for record in get_authentication_records(request, user)
        if record.get("method") == "password" and time.time() - float(record.get("at", 0)) < window
    ]
    if not signed_in:
        return False
    since = datetime.fromtimestamp(max(signed_in), tz=UTC)
    # Every authenticator of the account was made in this session, after the password was typed.
    return not Authenticator.objects.filter(user=user, created_at__lt=since).exists()
