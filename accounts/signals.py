"""Audit records of authentication events.

Django, allauth and django-axes report logins, failures, logouts and lockouts only through signals, so these
receivers are the one place where the accounts app listens to signals; each one calls a service.
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import services


@receiver(user_logged_in, dispatch_uid="soyang_audit_login")
def _audit_login(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    services.login_succeeded(user=user, request=request)


@receiver(user_logged_out, dispatch_uid="soyang_audit_logout")
def _audit_logout(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    services.logout_recorded(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="soyang_audit_login_failed")
def _audit_login_failed(sender: Any, credentials: dict | None = None, request: Any = None, **kwargs: Any) -> None:
    credentials = credentials or {}
    # Django masks the password in ``credentials``; only the name typed is kept.
    login_name = str(credentials.get("username") or credentials.get("email") or "")
    services.login_failed(login_name=login_name, request=request)


@receiver(user_locked_out, dispatch_uid="soyang_audit_lockout")
def _audit_lockout(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    services.login_locked_out(login_name=username or "", request=request)
