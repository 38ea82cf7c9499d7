"""Writes of the accounts app."""

from __future__ import annotations

from django.db import transaction

from accounts.choices import AccountStatus, Role
from accounts.models import Organisation, User
from audit.services import audit_record


@transaction.atomic
def organisation_get_or_create(*, name: str, kind: str = "hospital") -> Organisation:
    organisation, _ = Organisation.objects.get_or_create(name=name, defaults={"kind": kind})
    return organisation


@transaction.atomic
def account_create_approved(
    *,
    username: str,
    email: str,
    password: str,
    role: Role | str,
    organisation: Organisation,
    first_name: str = "",
    last_name: str = "",
    created_by: User | None = None,
) -> User:
    """Create an account that is already approved (admins and the demo set-up; sign-up goes through
    approval instead)."""
    role = Role(role)
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        first_name=first_name,
        last_name=last_name,
        organisation=organisation,
        role=role,
        status=AccountStatus.APPROVED,
        is_staff=role == Role.ADMIN,
        is_superuser=role == Role.ADMIN,
    )
    audit_record(action="account_create", actor=created_by, obj=user, detail={"role": role.value, "status": "approved"})
    return user


@transaction.atomic
def account_set_password(*, user: User, password: str, changed_by: User | None = None) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(action="password_reset", actor=changed_by, obj=user)
