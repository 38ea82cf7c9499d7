"""Every change made in the Django admin — to users, groups, authenticators, lockouts, sources and disclosure
policies — writes an audit event: additions and changes with the names of the changed fields (never a value, so
never a password hash or a secret), deletions one by one and in bulk, and any other bulk action."""

from __future__ import annotations

import json

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from axes.models import AccessAttempt
from django.contrib import admin as django_admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from accounts.models import User
from accounts.tests.factories import PASSWORD, SourceFactory, UserFactory, admin_user_form, enroll_totp
from audit.admin import AuditedAdminMixin
from audit.models import AuditEvent
from disclosure.models import DisclosurePolicy

NEW_PASSWORD = "An0ther-l0ng-passphrase!"  # noqa: S105 (a test password)


def _signed_in(admin: User) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def _event(action: str, obj: object) -> AuditEvent:
    return AuditEvent.objects.get(action=action, object_type=obj._meta.label_lower, object_id=str(obj.pk))


def _no_secret_in_the_log(*secrets: str) -> None:
    for detail in AuditEvent.objects.values_list("detail", flat=True):
        text = str(detail)
        for secret in secrets:
            assert secret not in text


def test_every_admin_of_the_site_audits() -> None:
    unaudited = [
        model._meta.label
        for model, model_admin in django_admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdminMixin)
    ]
    assert unaudited == []


def test_adding_a_user_records_the_fields_and_never_the_password(admin) -> None:
    response = _signed_in(admin).post(
        reverse("admin:accounts_user_add"),
        {"username": "dora", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    dora = User.objects.get(username="dora")
    event = _event("admin_add", dora)
    assert event.actor == admin
    assert "password" in event.detail["changed"] and "username" in event.detail["changed"]
    _no_secret_in_the_log(NEW_PASSWORD, dora.password)


def test_changing_a_users_role_records_the_changed_field_names(admin, charlie) -> None:
    url = reverse("admin:accounts_user_change", args=[charlie.pk])
    response = _signed_in(admin).post(url, admin_user_form(charlie, role=Role.PARTNER))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _event("admin_change", charlie)
    assert event.detail == {"changed": ["role"]} and event.actor == admin


def test_setting_a_password_in_the_admin_is_recorded_without_the_hash(admin, charlie) -> None:
    url = reverse("admin:auth_user_password_change", args=[charlie.pk])
    response = _signed_in(admin).post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    charlie.refresh_from_db()
    assert charlie.check_password(NEW_PASSWORD)
    assert _event("admin_change", charlie).detail == {"changed": ["password"]}
    _no_secret_in_the_log(NEW_PASSWORD, charlie.password, PASSWORD)


def test_deleting_users_in_bulk_records_each_one(admin, alice, charlie) -> None:
    ids = [alice.pk, charlie.pk]
    alice_repr, charlie_repr = str(alice), str(charlie)
    response = _signed_in(admin).post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk__in=ids).exists()
    deleted = AuditEvent.objects.filter(action="admin_delete", object_type="accounts.user")
    assert sorted(deleted.values_list("object_repr", flat=True)) == sorted([alice_repr, charlie_repr])
    assert all(event.detail == {"bulk": True} and event.actor == admin for event in deleted)


def test_group_additions_changes_and_deletions_are_recorded(admin) -> None:
    client = _signed_in(admin)
    assert client.post(reverse("admin:auth_group_add"), {"name": "auditors"}).status_code == 302
    group = Group.objects.get(name="auditors")
    assert _event("admin_add", group).detail == {"changed": ["name"]}
    url = reverse("admin:auth_group_change", args=[group.pk])
    assert client.post(url, {"name": "reviewers"}).status_code == 302
    assert _event("admin_change", group).detail == {"changed": ["name"]}
    group_pk = group.pk
    assert client.post(reverse("admin:auth_group_delete", args=[group_pk]), {"post": "yes"}).status_code == 302
    assert AuditEvent.objects.filter(action="admin_delete", object_type="auth.group", object_id=str(group_pk)).exists()


def test_removing_someones_authenticator_is_recorded_without_its_secret(admin, hospital) -> None:
    steward = UserFactory(username="stew3", role=Role.STEWARD, organisation=hospital)
    secret = enroll_totp(steward)
    authenticator = Authenticator.objects.get(user=steward)
    url = reverse("admin:mfa_authenticator_delete", args=[authenticator.pk])
    assert _signed_in(admin).post(url, {"post": "yes"}).status_code == 302
    assert not Authenticator.objects.filter(user=steward).exists()
    event = AuditEvent.objects.get(action="admin_delete", object_type="mfa.authenticator")
    assert event.object_id == str(authenticator.pk) and event.actor == admin
    _no_secret_in_the_log(secret)


def test_clearing_lockouts_is_recorded_per_attempt(admin) -> None:
    attempts = [
        AccessAttempt.objects.create(
            username=name,
            ip_address="10.0.0.1",
            user_agent="x",
            path_info="/accounts/login/",
            failures_since_start=5,
            attempt_time=timezone.now(),
            get_data="",
            post_data="",
            http_accept="",
        )
        for name in ("alice", "bob")
    ]
    response = _signed_in(admin).post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [a.pk for a in attempts], "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    events = AuditEvent.objects.filter(action="admin_delete", object_type="axes.accessattempt")
    assert sorted(events.values_list("object_id", flat=True)) == sorted(str(a.pk) for a in attempts)


def test_other_bulk_actions_are_recorded_per_selected_object(admin, hospital) -> None:
    dora = UserFactory(username="dora", organisation=hospital)
    address = EmailAddress.objects.create(user=dora, email="dora.work@example.org", verified=False, primary=False)
    response = _signed_in(admin).post(
        reverse("admin:account_emailaddress_changelist"),
        {"action": "make_verified", ACTION_CHECKBOX_NAME: [address.pk]},
    )
    assert response.status_code == 302
    address.refresh_from_db()
    assert address.verified
    event = _event("admin_action", address)
    assert event.detail == {"admin_action": "make_verified"} and event.actor == admin


def test_source_and_policy_changes_and_deletions_carry_their_site(admin) -> None:
    source = SourceFactory(key="site_b")
    policy = DisclosurePolicy.objects.create(source=source, min_cell_size=10, round_to=1)
    client = _signed_in(admin)
    url = reverse("admin:disclosure_disclosurepolicy_change", args=[policy.pk])
    roles = json.dumps(policy.aggregate_only_roles)
    # A field with a callable default is compared with the "initial-" copy the page sends along.
    form = {
        "min_cell_size": 11,
        "round_to": 1,
        "aggregate_only_roles": roles,
        "initial-aggregate_only_roles": roles,
        "perturbation_max_adjustment": 3,
        "perturbation_variance": "2",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _event("configuration_change", policy)
    assert event.source_key == "site_b" and event.detail["changed"] == ["min_cell_size"]
    policy_pk = policy.pk
    delete = reverse("admin:disclosure_disclosurepolicy_delete", args=[policy_pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    deleted = AuditEvent.objects.get(action="admin_delete", object_type="disclosure.disclosurepolicy")
    assert deleted.object_id == str(policy_pk) and deleted.source_key == "site_b"
