"""The API tests' world: the authorization matrices' people and projects P and Q (tests/world.py),
each person with a personal token, plus audit events of each site.

The world is built once per test module inside a transaction that is rolled back when the module ends; each test
runs in a savepoint inside it (pytest-django's ``db``), so every test still starts from the same world, at a
fraction of the cost of building it per test. ``api_client(role)`` gives a DRF test client authenticated with that
person's token (anonymous: no header). The pending account's token was made while it was approved; its use must
fail like any not-approved account's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import models, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.choices import AccountStatus
from accounts.models import User
from audit.services import audit_record
from tests.world import ROLES, World, build_world
from worker.tests.conftest import start_worker  # noqa: F401 (real worker processes, for the docs example)


def _add_api_objects(world: World) -> World:
    secrets: dict[str, str | None] = {"anonymous": None}
    world.P["tokens"] = {}
    for role in ROLES[1:]:
        user = world.users[role]
        if role == "pending":
            User.objects.filter(pk=user.pk).update(status=AccountStatus.APPROVED)
            user.refresh_from_db()
        new = token_create(user=user, name=f"{role}'s script", days=30)
        secrets[role] = new.secret
        world.P["tokens"][role] = new.token
        if role == "pending":
            User.objects.filter(pk=user.pk).update(status=AccountStatus.PENDING)
            user.refresh_from_db()
    dave = world.Q["project"].principal_investigator
    world.Q["token"] = token_create(user=dave, name="dave's script", days=30).token
    world.P["source"] = world.P["project"].sources.get()
    world.Q["source"] = world.Q["project"].sources.get()
    world.P["event"] = audit_record(action="count", actor=world.users["member"], source_key="syuh")
    world.Q["event"] = audit_record(action="count", actor=dave, source_key="crh")
    world.secrets = secrets  # type: ignore[attr-defined]
    return world


@pytest.fixture(scope="module")
def module_world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[World]:
    with django_db_blocker.unblock():
        with override_settings(SOYANG_DATASET_ROOT=tmp_path_factory.mktemp("datasets")):
            outer = transaction.atomic()
            outer.__enter__()
            try:
                yield _add_api_objects(build_world())
            finally:
                transaction.set_rollback(True)
                outer.__exit__(None, None, None)


def _model_instances(world: World) -> Iterator[models.Model]:
    for value in [*world.users.values(), *world.P.values(), *world.Q.values(), *world.P["tokens"].values()]:
        if isinstance(value, models.Model):
            yield value


@pytest.fixture
def api_world(module_world: World, db: Any) -> World:
    # The rows are back as they were (the last test's savepoint was rolled back); the Python objects may not be.
    for instance in _model_instances(module_world):
        instance.refresh_from_db()
    return module_world


@pytest.fixture
def api_client(api_world: World) -> Callable[[str], APIClient]:
    def make(role: str) -> APIClient:
        client = APIClient()
        secret = api_world.secrets[role]  # type: ignore[attr-defined]
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        return client

    return make
