"""factory_boy factories of the accounts app. Projects are made through ``project_create`` (see
``make_project``), so that their permission groups exist as in production."""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.apps import apps
from django.utils import timezone

from accounts.choices import AccountStatus, Role
from accounts.models import Organisation, Project, User
from accounts.services import membership_approve, membership_request, project_create

PASSWORD = "correct horse battery staple"


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Hospital {n}")
    kind = "hospital"


class UserFactory(factory.django.DjangoModelFactory):
    """An approved account with a verified e-mail address and the standard test password."""

    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    organisation = factory.SubFactory(OrganisationFactory)
    role = Role.RESEARCHER
    status = AccountStatus.APPROVED
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            self.save()
            EmailAddress.objects.get_or_create(
                user=self, email=self.email, defaults={"verified": True, "primary": True}
            )


def SourceFactory(**kwargs: Any) -> Any:  # noqa: N802 (reads like the other factories)
    """A warehouse source row (no warehouse behind it: the accounts tests only need its organisation)."""
    source_model = apps.get_model("warehouse", "Source")
    key = kwargs.pop("key")
    defaults = {"name": key.upper(), "engine": "duckdb", "url": f"duckdb:////tmp/{key}.duckdb"}
    defaults.update(kwargs)
    return source_model.objects.create(key=key, **defaults)


def gibleed_pg_source(cdm: Any, **kwargs: Any) -> Any:
    """The source of the PostgreSQL GiBleed test warehouse ``cdm`` (the ``cdm_gibleed_pg`` fixture)."""
    fields = {
        "key": "gibleed",
        "engine": "postgresql",
        "url": cdm.url,
        "cdm_schema": "gibleed",
        "vocabulary_schema": "gibleed",
        "results_schema": "gibleed_results",
        "fingerprint": "f" * 64,
    }
    return SourceFactory(**{**fields, **kwargs})


def enroll_totp(user: User) -> str:
    """Give the user an authenticator app; returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def make_project(
    *,
    principal_investigator: User,
    created_by: User,
    sources: list[Any],
    title: str = "Diabetes outcomes",
    starts_on: dt.date | None = None,
    expires_on: dt.date | None = None,
) -> Project:
    today = timezone.localdate()
    return project_create(
        title=title,
        purpose="Study of outcomes",
        approval_number="IRB-2026-001",
        principal_investigator=principal_investigator,
        starts_on=starts_on or today - dt.timedelta(days=30),
        expires_on=expires_on or today + dt.timedelta(days=365),
        sources=sources,
        created_by=created_by,
    )


def make_member(*, project: Project, user: User, owner: User, steward: User) -> Any:
    """A member approved by the project's owner and a steward, the normal way."""
    membership = membership_request(project=project, user=user)
    membership_approve(membership=membership, approver=owner)
    return membership_approve(membership=membership, approver=steward)


def admin_user_form(user: User, **changes: Any) -> dict[str, Any]:
    """The POST body of the Django admin's change form of ``user`` as it stands, with ``changes`` applied."""
    data: dict[str, Any] = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "date_joined_0": timezone.localtime(user.date_joined).date().isoformat(),
        "date_joined_1": timezone.localtime(user.date_joined).time().strftime("%H:%M:%S"),
        "organisation": user.organisation_id or "",
        "role": user.role,
        "status": user.status,
    }
    # The admin compares a date-time with the "initial-" copy the page sends along (show_hidden_initial).
    data["initial-date_joined_0"], data["initial-date_joined_1"] = data["date_joined_0"], data["date_joined_1"]
    for flag in ("is_active", "is_staff", "is_superuser"):
        if getattr(user, flag):
            data[flag] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not False}
