"""Housekeeping of the portal's own tables (no app owns them)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone


def sessions_clear_expired() -> int:
    """Delete the sessions past their expiry (signed out by idling or closing the browser, never by a request
    again) through the session engine, as Django's ``clearsessions`` does; returns how many expired rows there
    were. Engines that expire their own entries (cache, signed cookies) have nothing to delete."""
    expired = 0
    if settings.SESSION_ENGINE in ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"):
        expired = Session.objects.filter(expire_date__lt=timezone.now()).count()
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    return expired
