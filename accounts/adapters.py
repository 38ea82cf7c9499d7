"""How django-allauth's sign-up and login fit Soyang's approval rules."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.email_verification import (
    get_address_for_user,
    send_verification_email_to_address,
)
from allauth.account.internal.stagekit import clear_login
from allauth.account.models import EmailAddress
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
