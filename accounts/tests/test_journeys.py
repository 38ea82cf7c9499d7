"""Each role's way in: sign up, verify the e-mail, wait (no login), get approved, sign in, join a project."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.choices import AccountStatus, MembershipStatus, ProjectRole, Role
from accounts.models import ProjectMembership, User
from accounts.permissions import projects_for_user
from accounts.tests.factories import PASSWORD
from audit.models import AuditEvent

NEW_PASSWORD = "a long and unusual passphrase 42"


def _sign_up(client: Client, username: str) -> User:
    response = client.post(
        "/accounts/signup/",
        {
            "username": username,
            "email": f"{username}@example.org",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not client.session.get("_auth_user_id")
    return User.objects.get(username=username)


def _verify_email(client: Client, address: str) -> None:
    message = next(m for m in reversed(mail.outbox) if m.to == [address])
    url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body).group(1)
    response = client.post(url)
    assert response.status_code == 302


def _log_in(client: Client, login: str, password: str = NEW_PASSWORD):
    return client.post("/accounts/login/", {"login": login, "password": password})


@pytest.mark.parametrize(
    ("role", "project_role"), [(Role.RESEARCHER, ProjectRole.ANALYST), (Role.PARTNER, ProjectRole.PARTNER_VIEWER)]
)
def test_new_person_signs_up_waits_for_approval_and_joins_a_project(
    role, project_role, project, alice, steward, admin, hospital, django_capture_on_commit_callbacks
) -> None:
    visitor = Client()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        dana = _sign_up(visitor, "dana")
    assert dana.status == AccountStatus.PENDING
    assert any(m.to == ["dana@example.org"] for m in mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        _verify_email(visitor, "dana@example.org")
    assert dana.emailaddress_set.get().verified
    # The reviewers hear that an account waits.
    assert any(m.to == [admin.email] and "dana" in m.subject for m in mail.outbox)

    response = _log_in(visitor, "dana")
    assert response.status_code == 200
    assert "waiting for approval" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated

    reviewer = Client()
    reviewer.force_login(admin)
    assert "dana" in reviewer.get("/approvals/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer.post(
            f"/approvals/accounts/{dana.pk}/", {"decision": "approve", "organisation": hospital.pk, "role": role}
        )
    assert response.status_code == 302
    dana.refresh_from_db()
    assert (dana.status, dana.role, dana.organisation) == (AccountStatus.APPROVED, role, hospital)
    assert mail.outbox[-1].to == ["dana@example.org"] and "approved" in mail.outbox[-1].subject

    response = _log_in(visitor, "dana@example.org")  # the e-mail address works as the login too
    assert response.status_code == 302
    assert visitor.get("/").status_code == 200

    response = visitor.post(f"/projects/{project.pk}/join/")
    assert response.status_code == 302
    membership = ProjectMembership.objects.get(project=project, user=dana)
    assert membership.role == project_role
    assert visitor.get(f"/projects/{project.pk}/").status_code == 404  # not before both approvals

    owner = Client()
    owner.force_login(alice)
    owner.post(f"/projects/requests/{membership.pk}/decide/", {"decision": "approve"})
    site = Client()
    site.force_login(steward)
    assert "dana" in site.get("/approvals/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        site.post(f"/projects/requests/{membership.pk}/decide/", {"decision": "approve"})
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.APPROVED
    assert mail.outbox[-1].to == ["dana@example.org"]
    assert project in projects_for_user(dana)
    assert visitor.get(f"/projects/{project.pk}/").status_code == 200
    assert project.title in visitor.get("/projects/").content.decode()
    for action in (
        "account_signup",
        "email_verified",
        "login_refused",
        "account_approve",
        "login",
        "membership_request",
    ):
        assert AuditEvent.objects.filter(action=action).exists(), action


def test_steward_is_approved_by_an_admin_and_must_then_set_up_mfa(admin, hospital) -> None:
    visitor = Client()
    sam = _sign_up(visitor, "sam")
    _verify_email(visitor, "sam@example.org")
    reviewer = Client()
    reviewer.force_login(admin)
    reviewer.post(
        f"/approvals/accounts/{sam.pk}/", {"decision": "approve", "organisation": hospital.pk, "role": "steward"}
    )
    response = _log_in(visitor, "sam")
    assert response.status_code == 302
    assert visitor.get("/").url == "/accounts/2fa/totp/activate/"


def test_a_steward_cannot_approve_accounts_as_steward_or_into_another_organisation(
    steward, other_hospital, hospital
) -> None:
    visitor = Client()
    erin = _sign_up(visitor, "erin")
    _verify_email(visitor, "erin@example.org")
    reviewer = Client()
    reviewer.force_login(steward)
    reviewer.post(
        f"/approvals/accounts/{erin.pk}/", {"decision": "approve", "organisation": hospital.pk, "role": "admin"}
    )
    reviewer.post(
        f"/approvals/accounts/{erin.pk}/",
        {"decision": "approve", "organisation": other_hospital.pk, "role": "researcher"},
    )
    erin.refresh_from_db()
    assert erin.status == AccountStatus.PENDING
    reviewer.post(
        f"/approvals/accounts/{erin.pk}/", {"decision": "approve", "organisation": hospital.pk, "role": "partner"}
    )
    erin.refresh_from_db()
    assert (erin.status, erin.role) == (AccountStatus.APPROVED, Role.PARTNER)


def test_an_unverified_account_cannot_be_approved(admin, hospital) -> None:
    visitor = Client()
    fred = _sign_up(visitor, "fred")
    reviewer = Client()
    reviewer.force_login(admin)
    reviewer.post(
        f"/approvals/accounts/{fred.pk}/", {"decision": "approve", "organisation": hospital.pk, "role": "researcher"}
    )
    fred.refresh_from_db()
    assert fred.status == AccountStatus.PENDING


def test_rejected_applicant_is_told_why_at_login(admin, django_capture_on_commit_callbacks) -> None:
    visitor = Client()
    gina = _sign_up(visitor, "gina")
    _verify_email(visitor, "gina@example.org")
    reviewer = Client()
    reviewer.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        reviewer.post(f"/approvals/accounts/{gina.pk}/", {"decision": "reject", "reason": "not a member of staff"})
    gina.refresh_from_db()
    assert gina.status == AccountStatus.REJECTED
    assert "not a member of staff" in mail.outbox[-1].body
    body = _log_in(visitor, "gina").content.decode()
    assert "rejected" in body and "not a member of staff" in body
    event = AuditEvent.objects.get(action="account_reject")
    assert event.actor == admin and event.ip_address == "127.0.0.1"


def test_outsiders_have_no_approvals_page(charlie) -> None:
    client = Client()
    client.force_login(charlie)
    assert client.get("/approvals/").status_code == 404
    assert client.post(f"/approvals/accounts/{charlie.pk}/", {"decision": "suspend", "reason": "x"}).status_code == 404


def test_existing_password_is_unchanged(alice) -> None:
    assert alice.check_password(PASSWORD)


def test_the_allauth_pages_render_in_the_portal_layout(alice) -> None:
    client = Client()
    for path in ["/accounts/signup/", "/accounts/password/reset/", "/accounts/login/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Soyang" in response.content.decode()
    client.force_login(alice)
    assert client.get("/accounts/2fa/").status_code == 200
