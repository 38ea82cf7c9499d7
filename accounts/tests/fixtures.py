"""The standard people and project of the permission tests: a pytest plugin, registered for every test in the
root conftest.py.

alice owns the project (its principal investigator), bob is an approved member, charlie is an approved
researcher outside it; steward is the data steward of the hospital whose source the project uses; admin is
an admin. Steward and admin have TOTP enrolled (the portal requires it of them).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from accounts.choices import Role
from accounts.models import Organisation, Project, User
from accounts.tests.factories import (
    OrganisationFactory,
    SourceFactory,
    UserFactory,
    enroll_totp,
    make_member,
    make_project,
)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Any:
    # allauth's per-IP login limit and the API's throttle counters live in the cache, shared by every test of the
    # process.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hospital(db) -> Organisation:
    return OrganisationFactory(name="Soyang University Hospital")


@pytest.fixture
def other_hospital(db) -> Organisation:
    return OrganisationFactory(name="Chuncheon Regional Hospital")


@pytest.fixture
def source(hospital: Organisation) -> Any:
    return SourceFactory(key="syuh", organisation=hospital)


@pytest.fixture
def other_source(other_hospital: Organisation) -> Any:
    return SourceFactory(key="crh", organisation=other_hospital)


@pytest.fixture
def steward(hospital: Organisation) -> User:
    user = UserFactory(username="steward", role=Role.STEWARD, organisation=hospital)
    enroll_totp(user)
    return user


@pytest.fixture
def other_steward(other_hospital: Organisation) -> User:
    user = UserFactory(username="otherstew", role=Role.STEWARD, organisation=other_hospital)
    enroll_totp(user)
    return user


@pytest.fixture
def admin(hospital: Organisation) -> User:
    user = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital, is_staff=True, is_superuser=True)
    enroll_totp(user)
    return user


@pytest.fixture
def alice(hospital: Organisation) -> User:
    return UserFactory(username="alice", organisation=hospital)


@pytest.fixture
def bob(other_hospital: Organisation) -> User:
    return UserFactory(username="bob", organisation=other_hospital)


@pytest.fixture
def charlie(other_hospital: Organisation) -> User:
    return UserFactory(username="charlie", organisation=other_hospital)


@pytest.fixture
def project(alice: User, steward: User, source: Any) -> Project:
    return make_project(principal_investigator=alice, created_by=steward, sources=[source])


@pytest.fixture
def bob_member(project: Project, alice: User, bob: User, steward: User) -> Any:
    return make_member(project=project, user=bob, owner=alice, steward=steward)
