"""Expired sessions are deleted by Celery beat, so the session table does not grow with every sign-in for ever;
signed-in people keep their sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import OrganisationFactory, UserFactory
from worker.celery import app as celery_app
from worker.tasks import sessions_clear

pytestmark = pytest.mark.django_db


def test_expired_sessions_are_deleted_and_live_ones_kept() -> None:
    user = UserFactory(username="reader", organisation=OrganisationFactory(name="Hospital"))
    signed_in = Client()
    signed_in.force_login(user)
    stale = []
    for _ in range(3):
        session = SessionStore()
        session["note"] = "idled out"
        session.create()
        stale.append(session.session_key)
    Session.objects.filter(session_key__in=stale).update(expire_date=timezone.now() - timedelta(minutes=1))
    live = set(Session.objects.exclude(session_key__in=stale).values_list("session_key", flat=True))
    assert live

    assert sessions_clear() == 3

    assert set(Session.objects.values_list("session_key", flat=True)) == live
    assert signed_in.get("/").status_code == 200
    assert sessions_clear() == 0


def test_beat_clears_sessions_daily_on_the_portal_queue() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["sessions-clear"]
    assert entry["task"] == "worker.tasks.sessions_clear" == sessions_clear.name
    assert entry["schedule"] == 24 * 3600
    assert entry["options"] == {"queue": "portal"}
    assert "worker.tasks.sessions_clear" in celery_app.tasks
