"""Exact counts by grant (issue 15, Build 4): perturbed for every role by default; a steward of the site grants a
project exact (still thresholded) counts there, audited, ending with its date, its revocation or the project; the
project's members read them exact on the page and the API, partners never; bad input and other people are refused
and nothing is written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.tests.factories import UserFactory, make_member
from audit.models import AuditEvent
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.selectors import latest_counts, latest_counts_per_site, run_request_result_for_user
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import DEFAULT_PTABLE, count_request
from disclosure.models import ExactCountGrant
from disclosure.selectors import exact_grant_for
from disclosure.services import grant_exact_counts, revoke_exact_counts

TRUE_COUNT = 1234
#: The cell key whose noise in the default ptable's open row is -3: the perturbed count is 1,231, the exact 1,234.
KEY = DEFAULT_PTABLE.adjustments(TRUE_COUNT).index(-3)
PERTURBED = 1231


def _in(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


@pytest.fixture
def partner(project: Any, alice: Any, steward: Any) -> Any:
    user = UserFactory(username="pharma", role=Role.PARTNER)
    make_member(project=project, user=user, owner=alice, steward=steward)
    return user


@pytest.fixture
def counted(project: Any, alice: Any, source: Any, bob_member: Any, partner: Any) -> Any:
    """A definition of the project, shared with it, counted at the site (with the site's cell key)."""
    definition = definition_create(owner=alice, name="Gout", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    request = count_request(definition.latest_version(), alice, {source: TRUE_COUNT})
    for run in request.runs.all():
        run.result = {
            **run.result,
            "persons_key": KEY,
            "attrition": [{"name": "entry", "persons": TRUE_COUNT, "key": KEY}],
        }
        run.save(update_fields=["result"])
    return request


def _grant(project: Any, source: Any, steward: Any, **changes: Any) -> ExactCountGrant:
    arguments = {"reason": "IRB-2026-001: exact counts for the feasibility report", "ends_at": _in(10)}
    return grant_exact_counts(project=project, source=source, granted_by=steward, **{**arguments, **changes})


def _site(user: Any, request: Any) -> dict[str, Any]:
    (site,) = run_request_result_for_user(user, request)["sites"]
    return site


def _page_site(user: Any, request: Any) -> dict[str, Any]:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("cohorts:run_status", args=[request.pk]))
    assert response.status_code == 200
    (site,) = response.json()["sites"]
    return site


def _api_site(user: Any, request: Any) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/runs/{request.pk}/")
    assert response.status_code == 200, response.content
    (site,) = response.json()["sites"]
    return site


@pytest.mark.django_db
def test_without_a_grant_every_role_reads_perturbed_counts(counted, alice, bob_member, bob, partner) -> None:
    for user in (alice, bob):
        site = _site(user, counted)
        assert site["persons"]["value"] == PERTURBED
        assert site["privacy"]["method"] == "perturbed" and site["privacy"]["grant"] is None
        assert site["privacy"]["description"].startswith("perturbed")


@pytest.mark.django_db
def test_a_grant_in_force_gives_the_members_exact_counts_on_the_page_and_the_api(
    counted, project, source, steward, alice, bob_member, bob
) -> None:
    grant = _grant(project, source, steward)
    for user in (alice, bob):
        for site in (_page_site(user, counted), _api_site(user, counted)):
            assert site["persons"]["value"] == TRUE_COUNT
            assert [step["value"] for step in site["attrition"]] == [TRUE_COUNT]
            assert site["privacy"]["method"] == "exact" and site["privacy"]["grant"] == grant.pk
            assert site["privacy"]["description"] == f"exact by grant #{grant.pk}, counts under 10 hidden"
    definition = counted.version.definition
    assert latest_counts([definition.pk], user=bob)[definition.pk]["display"] == "1,234"
    (row,) = latest_counts_per_site(definition, user=bob)
    assert row["persons"]["value"] == TRUE_COUNT and row["privacy"].startswith(f"exact by grant #{grant.pk}")


@pytest.mark.django_db
def test_a_partner_in_the_project_still_reads_perturbed_counts(counted, project, source, steward, partner) -> None:
    _grant(project, source, steward)
    assert exact_grant_for(user=partner, project_id=project.pk, source=source) is None
    for site in (_page_site(partner, counted), _api_site(partner, counted)):
        assert site["privacy"]["method"] == "perturbed" and site["privacy"]["grant"] is None
        assert site["persons"]["value"] == 1230  # 1,231 rounded to the nearest 10 for partners


@pytest.mark.django_db
def test_an_admin_outside_the_project_and_an_outsider_are_not_reached(
    counted, project, source, steward, admin, charlie
) -> None:
    _grant(project, source, steward)
    assert exact_grant_for(user=admin, project_id=project.pk, source=source) is None
    assert exact_grant_for(user=charlie, project_id=project.pk, source=source) is None
    assert _site(admin, counted)["persons"]["value"] == PERTURBED


@pytest.mark.django_db
def test_revoked_expired_or_project_ended_is_perturbed_at_once(
    counted, project, source, steward, bob_member, bob
) -> None:
    grant = _grant(project, source, steward)
    assert _site(bob, counted)["persons"]["value"] == TRUE_COUNT
    revoke_exact_counts(grant=grant, revoked_by=steward, reason="protocol closed")
    assert _site(bob, counted)["persons"]["value"] == PERTURBED

    second = _grant(project, source, steward)
    assert _site(bob, counted)["persons"]["value"] == TRUE_COUNT
    ExactCountGrant.objects.filter(pk=second.pk).update(ends_at=_in(-1))  # its last day was yesterday
    assert _site(bob, counted)["persons"]["value"] == PERTURBED

    ExactCountGrant.objects.filter(pk=second.pk).update(ends_at=_in(10))
    assert _site(bob, counted)["persons"]["value"] == TRUE_COUNT
    # The project ends (yesterday): the grant ends with it, and so does the member's access.
    type(project).objects.filter(pk=project.pk).update(starts_on=_in(-60), expires_on=_in(-1))
    assert exact_grant_for(user=bob, project_id=project.pk, source=source) is None


@pytest.mark.django_db
def test_a_member_whose_membership_is_revoked_is_no_longer_reached(project, source, steward, bob_member, bob) -> None:
    _grant(project, source, steward)
    assert exact_grant_for(user=bob, project_id=project.pk, source=source) is not None
    from accounts.services import membership_revoke

    membership_revoke(membership=bob_member, revoked_by=steward, reason="left the study")
    assert exact_grant_for(user=bob, project_id=project.pk, source=source) is None


@pytest.mark.django_db
def test_granting_and_revoking_write_audit_events_for_the_site(project, source, steward) -> None:
    grant = _grant(project, source, steward)
    revoke_exact_counts(grant=grant, revoked_by=steward, reason="protocol closed")
    events = list(AuditEvent.objects.filter(object_type="disclosure.exactcountgrant").order_by("id"))
    assert [(e.action, e.actor_username, e.source_key, e.object_id) for e in events] == [
        ("exact_counts_grant", "steward", source.key, str(grant.pk)),
        ("exact_counts_revoke", "steward", source.key, str(grant.pk)),
    ]
    assert events[0].detail["reason"].startswith("IRB-2026-001")
    assert events[0].detail["ends_at"] == _in(10).isoformat()
    assert events[1].detail["reason"] == "protocol closed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": "  "}, "Give the reason"),
        ({"ends_at": timezone.localdate()}, "must end on a day after today"),
        ({"ends_at": dt.date(2020, 1, 1)}, "must end on a day after today"),
        ({"ends_at": dt.date(2999, 1, 1)}, "cannot outlast the project"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_writes_nothing(project, source, steward, changes, message) -> None:
    with pytest.raises(ValidationError, match=message):
        _grant(project, source, steward, **changes)
    assert not ExactCountGrant.objects.exists()
    assert not AuditEvent.objects.filter(action="exact_counts_grant").exists()


@pytest.mark.django_db
def test_a_site_the_project_does_not_count_on_and_a_second_grant_are_refused(
    project, source, other_source, steward, other_steward
) -> None:
    with pytest.raises(ValidationError, match="does not count on this site"):
        _grant(project, other_source, other_steward)
    grant = _grant(project, source, steward)
    with pytest.raises(ValidationError, match=f"Grant #{grant.pk} already makes"):
        _grant(project, source, steward)
    assert list(ExactCountGrant.objects.values_list("pk", flat=True)) == [grant.pk]


@pytest.mark.django_db
def test_only_a_steward_of_the_site_with_mfa_who_works_outside_the_project_grants(
    project, source, other_steward, admin, alice, bob_member, bob, hospital
) -> None:
    for user in (other_steward, admin, alice, bob):
        with pytest.raises(PermissionDenied, match="Only a data steward of the site"):
            _grant(project, source, user)
    no_mfa = UserFactory(username="newsteward", role=Role.STEWARD, organisation=hospital)
    with pytest.raises(PermissionDenied, match="Enrol an authenticator"):
        _grant(project, source, no_mfa)
    from accounts.tests.factories import enroll_totp

    member_steward = UserFactory(username="memberstew", role=Role.STEWARD, organisation=hospital)
    enroll_totp(member_steward)
    make_member(
        project=project,
        user=member_steward,
        owner=alice,
        steward=UserFactory(username="s3", role=Role.STEWARD, organisation=hospital),
    )
    with pytest.raises(PermissionDenied, match="You work in this project"):
        _grant(project, source, member_steward)
    assert not ExactCountGrant.objects.exists()


@pytest.mark.django_db
def test_the_page_refuses_non_stewards_and_lets_the_steward_grant_and_revoke(
    project, source, steward, alice, admin
) -> None:
    url = reverse("disclosure:grant_list")
    body = {"project": project.pk, "source": source.pk, "reason": "IRB-2026-001", "ends_at": _in(5).isoformat()}
    researcher = Client()
    researcher.force_login(alice)
    assert researcher.get(url).status_code == 403
    assert researcher.post(url, body).status_code == 403
    assert not ExactCountGrant.objects.exists()

    client = Client()
    client.force_login(steward)
    refused = client.post(url, {**body, "reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    past = client.post(url, {**body, "ends_at": "2020-01-01"})
    assert "must end on a day after today" in past.content.decode()
    assert not ExactCountGrant.objects.exists()
    assert client.post(url, body).status_code == 302
    grant = ExactCountGrant.objects.get()
    page = client.get(url).content.decode()
    assert f'data-grant="{grant.pk}"' in page and "in force" in page

    reader = Client()
    reader.force_login(admin)
    assert f'data-grant="{grant.pk}"' in reader.get(url).content.decode()
    assert reader.post(reverse("disclosure:grant_revoke", args=[grant.pk]), {"reason": "x"}).status_code == 403
    assert client.post(reverse("disclosure:grant_revoke", args=[grant.pk]), {"reason": "closed"}).status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_by == steward and grant.revocation_reason == "closed"


@pytest.mark.django_db
def test_the_api_lists_the_sites_grants_to_its_stewards_and_admins_only(
    project, source, steward, other_steward, admin, alice
) -> None:
    grant = _grant(project, source, steward)

    def listed(user: Any) -> Any:
        client = APIClient()
        client.force_authenticate(user)
        return client.get("/api/v1/exact-count-grants/")

    for user in (steward, admin):
        (row,) = listed(user).json()["results"]
        assert row["id"] == grant.pk and row["state"] == "in force" and row["source"] == source.key
    assert listed(other_steward).json()["results"] == []
    assert listed(alice).status_code == 404
